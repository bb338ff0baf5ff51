"""The epoch loop: optimizer, learning-rate schedule (warm-up, cosine) and mixed precision; per epoch one training
pass over sampled chips, one validation pass, the best model kept by validation mean IoU, and early stopping.

Deterministic for a seed on CPU, and a resumed run continues exactly where it stopped: nothing an epoch draws
depends on the epochs before it. Its chip order and augmentation come from
``numpy.random.default_rng([seed, epoch])``, torch's generator (dropout) is seeded from ``[seed, epoch, 1]``
(:func:`torch_seed`) and its learning rate is computed from the epoch
(:func:`~geoseg.training.schedule.lr_factor`), not stepped from the last one, so a run resumed with more
epochs follows the longer run's schedule.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from geoseg.core.metrics import ConfusionMatrix, thin_support
from geoseg.core.options import Progress
from geoseg.training.config import TrainConfig
from geoseg.training.data import SceneData, Split, iter_samples
from geoseg.training.distributed import Dist, wrap_model
from geoseg.training.losses import make_loss
from geoseg.training.rundir import RunState, load_resume, save_epoch
from geoseg.training.schedule import lr_factor

log = logging.getLogger("geoseg")

__all__ = ["EpochLoop", "epoch_order", "torch_seed"]

T = TypeVar("T")


def epoch_order(n: int, samples: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indexes of the ``samples`` chips of an epoch (default ``n``): whole shuffles of ``range(n)`` cut to length.

    Example:
        >>> order = epoch_order(3, 5, np.random.default_rng(0))
        >>> sorted(order[:3].tolist()), len(order)
        ([0, 1, 2], 5)
    """
    count = samples or n
    return np.concatenate([rng.permutation(n) for _ in range(math.ceil(count / n))])[:count]


def torch_seed(seed: int, epoch: int) -> int:
    """The seed of torch's generator for epoch ``epoch`` (its dropout): drawn from ``[seed, epoch, 1]``, apart from
    the epoch's numpy stream (``[seed, epoch]``).

    Example:
        >>> torch_seed(0, 1) == torch_seed(0, 1) != torch_seed(0, 2)
        True
    """
    return int(np.random.SeedSequence([seed, epoch, 1]).generate_state(1, np.uint64)[0])


class _Timer:
    """Measures how long the training loop waits for the next batch."""

    def __init__(self, items: Iterator[T]) -> None:
        self.items, self.wait = items, 0.0

    def __iter__(self) -> Iterator[Any]:
        while True:
            start = time.perf_counter()
            try:
                item = next(self.items)
            except StopIteration:
                return
            self.wait += time.perf_counter() - start
            yield item


def _best_provenance(epoch: int, summary: dict[str, Any]) -> dict[str, Any]:
    """Card provenance of a new best epoch: when, which epoch, its validation IoUs."""
    return {
        "trained": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "best_epoch": epoch,
        "validation_mean_iou": None if summary.get("mean_iou") is None else round(summary["mean_iou"], 4),
        "validation_iou": {c["name"]: None if c["iou"] is None else round(c["iou"], 4) for c in summary.get("classes", [])},
    }


class EpochLoop:
    """Trains ``model`` on the training chips of ``split`` and scores it on the validation chips, epoch by epoch.

    Holds the state that lives across epochs: the model on its device (and its
    DistributedDataParallel wrapper under torchrun), optimizer, loss and
    gradient scaler. The learning rate is set at the start of each epoch from
    :func:`~geoseg.training.schedule.lr_factor`.

    Example:
        >>> loop = EpochLoop(config, model, scenes, split, weights, "cpu")  # doctest: +SKIP
        >>> state = loop.run(RunState(), Path("runs/a"))  # doctest: +SKIP
    """

    def __init__(
        self,
        config: TrainConfig,
        model: Any,
        scenes: list[SceneData],
        split: Split,
        weights: list[float] | None,
        device: str,
        dist: Dist = Dist(),
    ) -> None:
        import torch

        t = config.train
        self.config, self.model, self.scenes, self.split, self.device, self.dist = config, model, scenes, split, device, dist
        self.names: list[str] = [c.name for c in model.card.classes]
        net = model.to(device)
        if device == "cpu":
            net = net.to(memory_format=torch.channels_last)
        self.net = net
        self.trained = wrap_model(net, dist, device)  # what the training steps call
        self.opt = torch.optim.AdamW(net.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        self.loss_fn = make_loss(t.loss, weights, t.focal_gamma)
        self.use_cuda = device.startswith("cuda")
        self.amp_dtype = torch.bfloat16 if self.use_cuda and torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_cuda and self.amp_dtype == torch.float16)
        self.confidence: float | None = None  # set by evaluate()

    def resume(self, run_dir: Path) -> RunState:
        """Load the weights and optimizer of ``run_dir``'s last epoch; returns the run's state."""
        return load_resume(run_dir, self.model, self.opt)

    def lr(self, epoch: int) -> float:
        """The learning rate epoch ``epoch`` (1-based) trains at (zero after the last)."""
        t = self.config.train
        return t.lr * lr_factor(epoch, t.epochs, t.warmup_epochs)

    def forward(self, x: Any, module: Any = None) -> Any:
        """Logits of a batch on the loop's device (``module``: the model unless given; autocast on CUDA)."""
        import torch

        x = x.to(self.device)
        if self.device == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=self.amp_dtype, enabled=self.use_cuda):
            return (self.net if module is None else module)(x)

    def step(self, data: np.ndarray, labels: np.ndarray) -> float:
        """One optimizer step on a batch; returns its loss."""
        import torch

        target = torch.from_numpy(labels.astype(np.int64)).to(self.device)
        logits = self.forward(torch.from_numpy(data), self.trained)
        loss = self.loss_fn(logits.float(), target)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return float(loss.detach())

    def train_epoch(self, epoch: int, progress: Progress | None = None) -> tuple[float, int, float]:
        """One pass over the epoch's training chips: summed loss and chips over all processes, and the data wait (s)."""
        import torch

        t = self.config.train
        for group in self.opt.param_groups:
            group["lr"] = self.lr(epoch)
        torch.manual_seed(torch_seed(t.seed, epoch))
        rng = np.random.default_rng([t.seed, epoch])
        order = epoch_order(len(self.split.train), t.samples_per_epoch, rng)
        samples = self.dist.share([self.split.train[i] for i in order])
        steps = math.ceil(len(samples) / t.batch_size)
        self.net.train()
        from geoseg.core.threads import prefetch

        mean, std = self.model.card.normalization()
        aug = {**asdict(self.config.augment), "level": mean / std}  # where raw zero lies, for gain jitter
        batches = iter_samples(self.scenes, samples, self.model.normalize, t.batch_size, rng, aug)
        timer = _Timer(prefetch(batches, depth=3))
        total_loss, seen = 0.0, 0
        for n, (data, labels, _) in enumerate(timer):
            total_loss += self.step(data, labels) * len(data)
            seen += len(data)
            if progress:
                progress(f"epoch {epoch}/{t.epochs}", n + 1, steps)
        total, count = (float(v) for v in self.dist.reduce([total_loss, seen]))
        return total, int(count), timer.wait

    def evaluate(self) -> tuple[ConfusionMatrix, float | None]:
        """Confusion matrix and mean loss on the validation chips (each process takes every world-th chip; the sums
        are reduced over the processes). Sets ``self.confidence``: the mean winning probability on the validation
        blocks' pixels (the model card's ``domain.validation_confidence`` at the best epoch)."""
        import torch

        dist, batch = self.dist, self.config.train.batch_size
        cm = ConfusionMatrix(len(self.names))
        losses, n, conf, scored = 0.0, 0, 0.0, 0
        self.net.eval()
        with torch.inference_mode():
            for data, labels, samples in iter_samples(
                self.scenes, self.split.val[dist.rank :: dist.world], self.net.normalize, batch
            ):
                logits = self.forward(torch.from_numpy(data))
                target = torch.from_numpy(labels.astype(np.int64))
                losses += float(self.loss_fn(logits.float().cpu(), target)) * len(data)
                n += len(data)
                cm.update(labels, logits.argmax(1).cpu().numpy())
                top = logits.float().softmax(1).amax(1).cpu().numpy()
                for chip, sample in zip(top, samples):  # every pixel of the scored part, labelled or not, as predict sees it
                    w = sample.score
                    part = chip if w is None else chip[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]
                    conf, scored = conf + float(part.sum(dtype=np.float64)), scored + part.size
        if dist.world > 1:
            reduced = dist.reduce(np.r_[cm.matrix.ravel(), losses, n, conf, scored])
            cm.matrix[:] = reduced[:-4].reshape(cm.matrix.shape).astype(cm.matrix.dtype)
            losses, n, conf, scored = float(reduced[-4]), int(reduced[-3]), float(reduced[-2]), int(reduced[-1])
        self.confidence = conf / scored if scored else None
        return cm, (losses / n if n else None)

    def epoch(self, epoch: int, progress: Progress | None = None) -> tuple[dict[str, Any], dict[str, Any], float]:
        """Train and validate one epoch: its history row, the validation summary and the score to keep the best by."""
        began = time.perf_counter()
        total_loss, seen, wait = self.train_epoch(epoch, progress)
        train_time = time.perf_counter() - began
        row: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": round(total_loss / max(seen, 1), 5),
            "lr": round(self.lr(epoch + 1), 8),  # the rate after the epoch: the next epoch's, as a scheduler step leaves it
        }
        summary: dict[str, Any] = {}
        score: float = epoch  # no validation: the latest model is the best
        if self.split.val:
            cm, val_loss = self.evaluate()
            summary = cm.summary(self.names)
            row.update(
                {
                    "val_loss": None if val_loss is None else round(val_loss, 5),
                    "val_miou": summary["mean_iou"],
                    "val_accuracy": summary["accuracy"],
                    "val_f1": summary["mean_f1"],
                }
            )
            row.update({f"iou_{c['name']}": c["iou"] for c in summary["classes"]})
            score = summary["mean_iou"] if summary["mean_iou"] is not None else -1.0
        row.update(
            {
                "chips": seen,
                "train_seconds": round(train_time, 2),
                "seconds": round(time.perf_counter() - began, 2),
                "data_wait_share": round(wait / max(train_time, 1e-9), 4),
            }
        )
        return row, summary, score

    def run(
        self,
        state: RunState,
        run_dir: Path,
        progress: Progress | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> RunState:
        """Train from the epoch after ``state.epoch`` to ``train.epochs`` (or until ``train.patience`` epochs bring
        no better score), writing ``run_dir`` after every epoch (main process only)."""
        t = self.config.train
        first = state.epoch + 1
        for epoch in range(first, t.epochs + 1):
            if t.patience and state.bad >= t.patience:
                break
            row, summary, score = self.epoch(epoch, progress)
            thin = thin_support(summary) if summary and epoch == first and self.dist.main else None
            if thin:  # the validation blocks do not change: said once per run
                log.warning("validation: %s", thin)
            state.history.append(row)
            state.epoch = epoch
            improved = score > state.best
            if improved:
                state.best, state.best_epoch, state.bad, state.best_summary = score, epoch, 0, summary
                self.model.card.provenance.update(_best_provenance(epoch, summary))
                domain = self.model.card.provenance.get("domain")
                if isinstance(domain, dict):
                    domain["validation_confidence"] = None if self.confidence is None else round(self.confidence, 4)
            else:
                state.bad += 1
            if self.dist.main:  # the other processes hold the same weights (DistributedDataParallel)
                save_epoch(run_dir, self.model, self.opt, state, improved, t.save_fp16)
            if on_epoch:
                on_epoch(row)
        return state
