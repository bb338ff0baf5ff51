"""Held-out accuracy of the bundled default model next to a per-pixel baseline (the README table).

Rebuilds the training run's spatial split from its config (same seed, so the
same validation blocks), predicts the whole scene with the model through
``geoseg.predict`` (stitched, as users get it), and trains a per-pixel
baseline on the training area's labeled pixels: multinomial logistic
regression on the 10 normalized bands (a linear classifier, class-weighted
like the model). Both are scored only on labeled pixels of the validation
blocks. Prints a Markdown table.

    .venv/bin/python benchmarks/default_model_report.py [configs/brandenburg_default.yaml] [MODEL]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
import torch

import geoseg
from geoseg.core.classes import IGNORE_INDEX
from geoseg.core.metrics import ConfusionMatrix
from geoseg.training.config import load_config
from geoseg.training.prepare import open_scenes, split_scenes

ROOT = Path(__file__).resolve().parents[1]


def cells_to_pixels(cells: np.ndarray, stride: int, shape: tuple[int, int]) -> np.ndarray:
    return np.kron(cells, np.ones((stride, stride), bool))[: shape[0], : shape[1]]


def baseline(data: np.ndarray, labels: np.ndarray, train: np.ndarray, k: int, weights: list[float]) -> np.ndarray:
    """Per-pixel logistic regression fitted on the training pixels; returns the class of every pixel."""
    torch.manual_seed(0)
    c = data.shape[0]
    x = torch.from_numpy(data.reshape(c, -1).T.copy())
    y = torch.from_numpy(labels.ravel().astype(np.int64))
    sel = torch.from_numpy((train & (labels != IGNORE_INDEX)).ravel())
    linear = torch.nn.Linear(c, k)
    opt = torch.optim.LBFGS(linear.parameters(), max_iter=300, line_search_fn="strong_wolfe")
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32))

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn(linear(x[sel]), y[sel])
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return linear(x).argmax(1).numpy().reshape(labels.shape)


def main() -> None:
    config = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "configs" / "brandenburg_default.yaml"
    model_path = sys.argv[2] if len(sys.argv) > 2 else "default"
    cfg = load_config(config)
    model = geoseg.load_model(model_path)
    with tempfile.TemporaryDirectory() as tmp:
        scenes, _, label_map, _ = open_scenes(cfg, None, Path(tmp))
        split = split_scenes(cfg, scenes)
        scene = scenes[0]
        full = rasterio.windows.Window(0, 0, scene.width, scene.height)
        data, valid, labels = scene.read(full)
        stride = scene.stride
        val = cells_to_pixels(split.val_cells[0], stride, labels.shape)
        train = cells_to_pixels(split.train_cells[0], stride, labels.shape)
        out = Path(tmp) / "classes.tif"
        geoseg.predict(scene.image, model, out)
        with rasterio.open(out) as ds:
            pred = ds.read(1)
        for s in scenes:
            s.close()
    names = label_map.names
    k = len(names)
    truth_val = np.where(val, labels, IGNORE_INDEX)
    truth_train = np.where(train, labels, IGNORE_INDEX)
    model_cm = ConfusionMatrix(k)
    model_cm.update(truth_val, pred)
    norm = (data - np.asarray(model.card.mean, np.float32)[:, None, None]) / np.asarray(model.card.std, np.float32)[:, None, None]
    from geoseg.training.losses import auto_class_weights

    train_counts = np.bincount(truth_train[truth_train != IGNORE_INDEX], minlength=k)
    base = baseline(norm.astype(np.float32), labels, train, k, auto_class_weights(train_counts))
    base_cm = ConfusionMatrix(k)
    base_cm.update(truth_val, base)
    m, b = model_cm.summary(names), base_cm.summary(names)
    print(
        f"model {model_path}: {model.card.name}; validation blocks {int(split.val_cells[0].sum() * stride**2)} px "
        f"of {labels.size}; training chips {len(split.train)}"
    )
    print()
    print("| class | labeled px (train) | labeled px (held out) | IoU model | IoU baseline |")
    print("|---|---:|---:|---:|---:|")
    for cm_row, base_row, n_train in zip(m["classes"], b["classes"], train_counts):
        print(
            f"| {cm_row['name']} | {n_train:,} | {cm_row['pixels']:,} | {cm_row['iou'] or 0:.3f} | {base_row['iou'] or 0:.3f} |"
        )
    print(f"| **mean IoU** | {int(train_counts.sum()):,} | {m['pixels']:,} | **{m['mean_iou']:.3f}** | **{b['mean_iou']:.3f}** |")
    print(f"| pixel accuracy | | | {m['accuracy']:.3f} | {b['accuracy']:.3f} |")


if __name__ == "__main__":
    main()
