"""Training throughput on CPU for the default config, and the share of time spent waiting for data.

Trains the bundled model's config (configs/brandenburg_default.yaml: Unet
mobilenet_v2, 256 px chips, batch 8, flips/rotations/scale/brightness
augmentation) for a few epochs of 64 chips each, into a temporary folder.
Chips per second count training chips only (validation excluded);
``data_wait_share`` is the share of the training loop spent waiting for the
next batch from the background reader (reading windows, burning polygons,
augmenting).

    .venv/bin/python benchmarks/bench_train.py [EPOCHS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import geoseg
from geoseg.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    cfg_path = ROOT / "configs" / "brandenburg_default.yaml"
    import yaml

    raw = yaml.safe_load(cfg_path.read_text())
    raw["train"].update({"epochs": epochs, "samples_per_epoch": 64, "patience": None})
    for scene in raw["data"]["scenes"]:
        for key in ("image", "labels"):
            scene[key] = str((cfg_path.parent / scene[key]).resolve())
    load_config(cfg_path)  # the config as shipped is valid
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = geoseg.train(raw, Path(tmp) / "run")
        total = time.perf_counter() - started
    import torch

    print(f"config {cfg_path.name}, torch threads {torch.get_num_threads()}, {epochs} epochs x 64 chips of 256 px")
    print("| epoch | chips | training s | train chips/s | data wait share | epoch s (with validation) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in result.history:
        train_s = row["train_seconds"]
        print(
            f"| {row['epoch']} | {row['chips']} | {train_s:.1f} | {row['chips'] / train_s:.2f} | "
            f"{row['data_wait_share']:.1%} | {row['seconds']:.1f} |"
        )
    print(f"total {total:.1f} s including indexing the scene and building the model")


if __name__ == "__main__":
    main()
