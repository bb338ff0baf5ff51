"""``geoseg.train``: train an smp model from a config, with a spatial split and a self-describing checkpoint.

RUN_DIR receives ``model.pt`` (best validation mean IoU), ``last.pt``,
``resume.pt`` (optimizer state for ``--resume``), ``history.csv``,
``curves.png``, ``metrics.json`` and a copy of the config.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from geoseg.core.errors import InputError, OutputError
from geoseg.core.labels import LabelMap
from geoseg.core.metrics import ConfusionMatrix
from geoseg.io.paths import atomic_output, write_text_atomic
from geoseg.training.config import ConfigError, load_config, parse_config
from geoseg.training.data import (
    SceneData,
    Split,
    band_stats,
    class_counts,
    index_scene,
    iter_samples,
    make_split,
)

__all__ = ["TrainResult", "train"]

log = logging.getLogger("geoseg")
Progress = Callable[[str, int, int], None]


@dataclass
class TrainResult:
    """Where the run went and how it ended."""

    run_dir: Path
    model_path: Path
    best_epoch: int
    best_miou: float | None
    history: list[dict[str, Any]]
    metrics: dict[str, Any]


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    """A config without the keys a resumed run may change (more epochs, other patience or threads)."""
    cfg = json.loads(json.dumps(cfg))
    for key in ("epochs", "patience", "threads"):
        cfg["train"].pop(key, None)
    return cfg


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    if resume:
        if not (run_dir / "resume.pt").is_file():
            raise OutputError(f"{run_dir} holds no resume.pt: --resume continues a run started with geoseg train")
        return
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise OutputError(
            f"run folder {run_dir} already exists and is not empty: use --resume to continue it or choose another folder"
        )
    parent = next((p for p in run_dir.parents if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create run folder {run_dir}: {parent} is not a writable folder")


def _scene_bands(ds: Any, wanted: list | None) -> tuple[list[int], list[str]]:
    from geoseg.core.bands import parse_requested

    descriptions = list(ds.descriptions)
    indexes = list(range(1, ds.count + 1)) if wanted is None else parse_requested(wanted, descriptions, ds.count)
    names = [descriptions[i - 1] or f"band_{i}" for i in indexes]
    return indexes, names


def _open_scenes(cfg: dict[str, Any], progress: Progress | None, work: Path) -> tuple[list[SceneData], list[str], Any, float]:
    from geoseg.io.label_files import SceneGrid, open_labels
    from geoseg.io.raster import gdal_env, open_scene, pixel_size_m

    data = cfg["data"]
    if data["chips"]:
        from geoseg.training.chipset import chip_mosaics

        if data["classes"] is not None:
            raise ConfigError(
                "config key data.classes: chips carry their classes (CHIP_DIR/classes.json); "
                "remove data.classes or train from scenes"
            )
        scene_cfgs, spec = chip_mosaics(Path(data["chips"]), work)
        label_map = LabelMap.from_spec(spec)
    else:
        scene_cfgs = data["scenes"]
        label_map = None if data["classes"] is None else LabelMap.from_spec(data["classes"], data["ignore_values"])
    scenes: list[SceneData] = []
    band_names: list[str] | None = None
    pixel = 0.0
    chip = cfg["model"]["chip_size"]
    stride = data["stride"] or max(8, chip // 4)
    with gdal_env():
        for sc in scene_cfgs:
            with open_scene(sc["image"]) as ds:
                indexes, names = _scene_bands(ds, data["bands"])
                grid = SceneGrid.of(ds)
                pixel = pixel or pixel_size_m(ds)
            if band_names is None:
                band_names = names
            elif len(names) != len(band_names):
                raise InputError(
                    f"scene {sc['image']} gives {len(names)} bands but the first scene gives "
                    f"{len(band_names)} ({', '.join(band_names)}): set data.bands to pick the same bands"
                )
            labels = open_labels(sc["labels"], grid, sc.get("label_field"), label_map, tuple(data["ignore_values"]))
            label_map = labels.label_map
            scenes.append(index_scene(sc["image"], labels, indexes, len(label_map.classes), stride, progress))
    return scenes, band_names or [], label_map, pixel


def _split(cfg: dict[str, Any], scenes: list[SceneData]) -> Split:
    chip = cfg["model"]["chip_size"]
    stride = scenes[0].stride
    block = cfg["split"]["block_size"] or chip
    gap = stride if cfg["split"]["gap"] is None else cfg["split"]["gap"]
    for key, value in (("data.stride", chip), ("split.block_size", block)):
        if value % stride:
            raise ConfigError(f"config key {key}: {value} must be a multiple of data.stride ({stride})")
    split = make_split(scenes, chip, block, gap, cfg["split"]["val_fraction"], cfg["data"]["min_labeled"], cfg["split"]["seed"])
    if not split.train:
        raise InputError(
            f"no training chip of {chip} px has {cfg['data']['min_labeled']:.0%} labeled pixels outside the "
            "validation blocks: lower data.min_labeled, split.val_fraction or model.chip_size"
        )
    return split


def _class_weights(cfg: dict[str, Any], counts: np.ndarray, names: list[str]) -> list[float] | None:
    from geoseg.training.losses import auto_class_weights

    given = cfg["train"]["class_weights"]
    if isinstance(given, list):
        if len(given) != len(names):
            raise ConfigError(
                f"config key train.class_weights: {len(given)} weights for {len(names)} classes "
                f"({', '.join(names)}): give one per class"
            )
        return [float(w) for w in given]
    if given == "auto":
        return auto_class_weights(counts)
    return None


def _epoch_order(n: int, samples: int | None, rng: np.random.Generator) -> np.ndarray:
    count = samples or n
    return np.concatenate([rng.permutation(n) for _ in range(math.ceil(count / n))])[:count]


class _Timer:
    """Measures how long the training loop waits for the next batch."""

    def __init__(self, items: Iterator) -> None:
        self.items, self.wait = items, 0.0

    def __iter__(self) -> Iterator:
        while True:
            start = time.perf_counter()
            try:
                item = next(self.items)
            except StopIteration:
                return
            self.wait += time.perf_counter() - start
            yield item


def _write_history(run_dir: Path, history: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for row in history for k in row))
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text_atomic(run_dir / "history.csv", buf.getvalue())


def _plot_curves(run_dir: Path, history: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [r["train_loss"] for r in history], label="train")
    if any(r.get("val_loss") is not None for r in history):
        a.plot(epochs, [r.get("val_loss") for r in history], label="validation")
    a.set_xlabel("epoch"), a.set_ylabel("loss"), a.legend(), a.set_title("loss")
    b.plot(epochs, [r.get("val_miou") for r in history], label="mean IoU")
    b.plot(epochs, [r.get("val_accuracy") for r in history], label="pixel accuracy")
    b.set_xlabel("epoch"), b.set_ylim(0, 1), b.legend(), b.set_title("validation")
    fig.tight_layout()
    with atomic_output(run_dir / "curves.png") as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


@dataclass
class _Dist:
    """This process's place in a torchrun job (rank 0 of 1 when not under torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def reduce(self, values: list[float] | np.ndarray) -> np.ndarray:
        """Sum ``values`` over all processes (float64)."""
        array = np.asarray(values, dtype=np.float64)
        if self.world == 1:
            return array
        import torch
        import torch.distributed as dist

        tensor = torch.from_numpy(array.copy())
        if dist.get_backend() == "nccl":
            tensor = tensor.cuda()
        dist.all_reduce(tensor)
        return tensor.cpu().numpy()

    def share(self, samples: list) -> list:
        """This process's part of an epoch's samples (torch's DistributedSampler: padded so all take as many steps)."""
        if self.world == 1:
            return samples
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(range(len(samples)), num_replicas=self.world, rank=self.rank, shuffle=False)
        return [samples[i] for i in sampler]


@contextlib.contextmanager
def _distributed(device: str) -> Iterator[_Dist]:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE`` > 1): gloo on CPU, nccl on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        yield _Dist()
        return
    import torch.distributed as dist

    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend=backend)
    info = _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if info.main:
        log.info("training on %d processes (torchrun, %s)", info.world, backend)
    else:
        log.setLevel(logging.WARNING)
    try:
        yield info
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def _deterministic(device: str, threads: int | None) -> Iterator[None]:
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    if device == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        torch.set_num_threads(old_threads)


def _evaluate(
    model: Any,
    runner: Callable,
    scenes: list[SceneData],
    split: Split,
    batch: int,
    k: int,
    loss_fn: Callable,
    dist_info: _Dist = _Dist(),
) -> tuple[ConfusionMatrix, float | None]:
    """Confusion matrix and mean loss on the validation chips (each process takes every world-th chip; the sums
    are reduced over the processes)."""
    import torch

    cm = ConfusionMatrix(k)
    losses, n = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for data, labels, _ in iter_samples(scenes, split.val[dist_info.rank :: dist_info.world], model.normalize, batch):
            logits = runner(torch.from_numpy(data))
            target = torch.from_numpy(labels.astype(np.int64))
            losses += float(loss_fn(logits.float().cpu(), target)) * len(data)
            n += len(data)
            cm.update(labels, logits.argmax(1).cpu().numpy())
    if dist_info.world > 1:
        reduced = dist_info.reduce(np.r_[cm.matrix.ravel(), losses, n])
        cm.matrix[:] = reduced[:-2].reshape(cm.matrix.shape).astype(cm.matrix.dtype)
        losses, n = float(reduced[-2]), int(reduced[-1])
    return cm, (losses / n if n else None)


def train(
    config: dict[str, Any] | str | os.PathLike,
    run_dir: str | os.PathLike,
    resume: bool = False,
    progress: Progress | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train a model as ``config`` describes and write the run to ``run_dir``.

    ``config`` is a YAML path or a mapping (paths relative to the current
    folder). Returns the best checkpoint's path and the history.

    Example:
        >>> result = train("configs/brandenburg_default.yaml", "runs/default")  # doctest: +SKIP
        >>> result.best_miou  # doctest: +SKIP
    """

    cfg = load_config(config) if isinstance(config, (str, os.PathLike)) else parse_config(config, Path.cwd())
    run_dir = Path(run_dir)
    from geoseg.model.device import resolve_device

    device = resolve_device(cfg["train"]["device"])
    with _distributed(device) as dist_info:
        _check_run_dir(run_dir, resume)
        if resume:
            saved = json.loads((run_dir / "config.yaml").read_text(encoding="utf-8"))
            if _comparable(saved) != _comparable(cfg):
                raise ConfigError(
                    f"the config differs from the one {run_dir} was started with: resume with "
                    f"{run_dir / 'config.yaml'} or start a new run folder"
                )
        if dist_info.world > 1:
            import torch.distributed as dist

            dist.barrier()  # every process has checked RUN_DIR before rank 0 writes to it
            if device.startswith("cuda"):
                device = f"cuda:{dist_info.local_rank}"
        threads = cfg["train"]["threads"]
        if dist_info.world > 1 and not threads and device == "cpu":  # share the cores between the processes
            local = int(os.environ.get("LOCAL_WORLD_SIZE", dist_info.world))
            threads = max(1, (os.cpu_count() or 1) // local)
        with tempfile.TemporaryDirectory(prefix="geoseg-train-") as work:
            scenes, band_names, label_map, pixel = _open_scenes(cfg, progress if dist_info.main else None, Path(work))
            try:
                with _deterministic(device, threads):
                    return _train(
                        cfg,
                        run_dir,
                        resume,
                        scenes,
                        band_names,
                        label_map,
                        pixel,
                        device,
                        progress if dist_info.main else None,
                        on_epoch,
                        dist_info,
                    )
            finally:
                for scene in scenes:
                    scene.close()


def _build(
    cfg: dict[str, Any],
    band_names: list[str],
    label_map: Any,
    pixel: float,
    mean: list[float],
    std: list[float],
    scenes: list[SceneData],
    split: Split,
) -> Any:
    from geoseg.model.factory import create_model

    m = cfg["model"]
    model = create_model(
        m["arch"],
        m["encoder"],
        bands=band_names,
        classes=label_map.classes,
        chip_size=m["chip_size"],
        overlap=m["overlap"],
        mean=mean,
        std=std,
        pixel_size=round(pixel, 3),
        encoder_weights=m["encoder_weights"],
        name=cfg["name"],
        **m["params"],
    )
    model.card.provenance.update(
        {
            "description": cfg["description"],
            **{key: cfg[key] for key in ("attribution", "licence") if cfg[key]},
            "training_scenes": [Path(s.image).name for s in scenes],
            "training_chips": len(split.train),
            "validation_chips": len(split.val),
            "label_values": {c.name: label_map.values_of(c.id) for c in label_map.classes},
        }
    )
    return model


def _train(cfg, run_dir, resume, scenes, band_names, label_map, pixel, device, progress, on_epoch, dist_info=_Dist()):
    import torch

    from geoseg.core.threads import prefetch
    from geoseg.training.losses import make_loss

    t = cfg["train"]
    split = _split(cfg, scenes)
    mean, std = band_stats(scenes, split.train_cells)
    counts = class_counts(scenes, split.train_cells)
    names = label_map.names
    for name, count in zip(names, counts):
        if count == 0:
            log.warning("class %s has no labeled pixel in the training area: it cannot be learned", name)
    weights = _class_weights(cfg, counts, names)
    torch.manual_seed(t["seed"])
    model = _build(cfg, band_names, label_map, pixel, mean, std, scenes, split)
    model.card.provenance["class_weights"] = None if weights is None else [round(w, 4) for w in weights]
    model.card.provenance["training_pixels"] = {n: int(c) for n, c in zip(names, counts)}
    model.card.provenance["processes"] = dist_info.world
    net = model.to(device)
    if device == "cpu":
        net = net.to(memory_format=torch.channels_last)
    trained = net  # what the training steps call: the model, or its DistributedDataParallel wrapper
    if dist_info.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # static_graph: the same layers run every step, and encoders cut short (encoder_depth) leave some unused
        trained = DistributedDataParallel(
            net, device_ids=[dist_info.local_rank] if device.startswith("cuda") else None, static_graph=True
        )
    opt = torch.optim.AdamW(net.parameters(), lr=t["lr"], weight_decay=t["weight_decay"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t["epochs"])
    loss_fn = make_loss(t["loss"], weights, t["focal_gamma"])
    use_cuda = device.startswith("cuda")
    amp_dtype = torch.bfloat16 if use_cuda and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_cuda and amp_dtype == torch.float16)
    history: list[dict[str, Any]] = []
    start_epoch, best, best_epoch, bad = 1, -1.0, 0, 0
    if resume:
        from geoseg.model.checkpoint import read_checkpoint

        state = torch.load(run_dir / "resume.pt", map_location="cpu", weights_only=True)
        _, weights_state = read_checkpoint(run_dir / "last.pt")
        model.net.load_state_dict(weights_state)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        sched.T_max = t["epochs"]  # a resumed run may be given more epochs
        history, best, best_epoch, bad = state["history"], state["best"], state["best_epoch"], state["bad"]
        start_epoch = state["epoch"] + 1
        if best_epoch:
            model.card.provenance.update(state.get("best_provenance", {}))
    elif dist_info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.yaml", json.dumps(cfg, indent=2))

    def forward(x: torch.Tensor, module: Any = net) -> torch.Tensor:
        x = x.to(device)
        if device == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=amp_dtype, enabled=use_cuda):
            return module(x)

    aug = {k: cfg["augment"][k] for k in ("flips", "rot90", "scale", "brightness")}
    batch = t["batch_size"]
    best_summary: dict[str, Any] = {}
    if resume and (run_dir / "metrics.json").is_file():
        best_summary = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")).get("validation", {})
    for epoch in range(start_epoch, t["epochs"] + 1):
        if t["patience"] and bad >= t["patience"]:
            break
        began = time.perf_counter()
        rng = np.random.default_rng([t["seed"], epoch])
        order = _epoch_order(len(split.train), t["samples_per_epoch"], rng)
        samples = dist_info.share([split.train[i] for i in order])
        steps = math.ceil(len(samples) / batch)
        net.train()
        timer = _Timer(prefetch(iter_samples(scenes, samples, model.normalize, batch, rng, aug), depth=3))
        total_loss, seen = 0.0, 0
        for step, (data, labels, _) in enumerate(timer):
            target = torch.from_numpy(labels.astype(np.int64)).to(device)
            logits = forward(torch.from_numpy(data), trained)
            loss = loss_fn(logits.float(), target)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total_loss += float(loss.detach()) * len(data)
            seen += len(data)
            if progress:
                progress(f"epoch {epoch}/{t['epochs']}", step + 1, steps)
        sched.step()
        train_time = time.perf_counter() - began
        total_loss, seen = (float(v) for v in dist_info.reduce([total_loss, seen]))
        seen = int(seen)
        row: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": round(total_loss / max(seen, 1), 5),
            "lr": round(opt.param_groups[0]["lr"], 8),
        }
        if split.val:
            cm, val_loss = _evaluate(net, forward, scenes, split, batch, len(names), loss_fn, dist_info)
            summary = cm.summary(names)
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
        else:
            summary, score = {}, epoch  # no validation: the latest model is the best
        row.update(
            {
                "chips": seen,
                "train_seconds": round(train_time, 2),
                "seconds": round(time.perf_counter() - began, 2),
                "data_wait_share": round(timer.wait / max(train_time, 1e-9), 4),
            }
        )
        history.append(row)
        if score > best:
            best, best_epoch, bad, best_summary = score, epoch, 0, summary
            model.card.provenance.update(
                {
                    "trained": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "best_epoch": epoch,
                    "validation_mean_iou": None if summary.get("mean_iou") is None else round(summary["mean_iou"], 4),
                    "validation_iou": {
                        c["name"]: None if c["iou"] is None else round(c["iou"], 4) for c in summary.get("classes", [])
                    },
                }
            )
            if dist_info.main:
                model.save(run_dir / "model.pt", half=t["save_fp16"])
        else:
            bad += 1
        if dist_info.main:  # the other processes hold the same weights (DistributedDataParallel)
            model.save(run_dir / "last.pt", half=False)
            _save_resume(torch, run_dir, opt, sched, epoch, history, best, best_epoch, bad, model)
            _write_history(run_dir, history)
            _plot_curves(run_dir, history)
            write_text_atomic(
                run_dir / "metrics.json", json.dumps({"best_epoch": best_epoch, "validation": best_summary}, indent=2)
            )
        if on_epoch:
            on_epoch(row)
    return TrainResult(
        run_dir, run_dir / "model.pt", best_epoch, best if best >= 0 and split.val else None, history, best_summary
    )


def _save_resume(torch, run_dir, opt, sched, epoch, history, best, best_epoch, bad, model) -> None:
    keys = ("trained", "best_epoch", "validation_mean_iou", "validation_iou")
    state = {
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": epoch,
        "history": history,
        "best": best,
        "best_epoch": best_epoch,
        "bad": bad,
        "best_provenance": {k: model.card.provenance[k] for k in keys if k in model.card.provenance},
    }
    with atomic_output(run_dir / "resume.pt") as tmp:
        torch.save(state, tmp)
