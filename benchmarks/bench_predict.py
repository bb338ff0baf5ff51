"""Predict benchmark: speed, peak memory, and overhead over the pure model forward pass.

Generates 4-band uint16 scenes (blocky fields that compress well) of 4096 x 4096,
4096 wide x 16384 tall, and 16384 x 16384 pixels, and predicts each with a
Unet-resnet18 (256-px chips, 32-px overlap, batch 8) in a fresh process, so
every scene's peak RSS is its own. For each scene it prints megapixels per
second, peak RSS, and predict time divided by the model's own forward time on
the same chips; for the first scene the model-only time is also measured in
a separate loop with no I/O at all.

    .venv/bin/python benchmarks/bench_predict.py            # all three scenes (~15 min on 2 cores)
    .venv/bin/python benchmarks/bench_predict.py --quick    # 1024 x 1024 and 1024 x 4096 only
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "output"
SIZES = {"full": [(4096, 4096), (4096, 16384), (16384, 16384)], "quick": [(1024, 1024), (1024, 4096)]}
CHIP, OVERLAP, BATCH = 256, "32px", 8


def make_scene(path: Path, width: int, height: int) -> Path:
    """A 4-band uint16 scene of 64-px fields with noise-free values (compresses to a few MB)."""
    import rasterio
    from affine import Affine

    if path.exists():
        return path
    rng = np.random.default_rng(width * 7 + height)
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 4,
        "dtype": "uint16",
        "crs": "EPSG:32633",
        "transform": Affine(10, 0, 300000, 0, -10, 5900000),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 2,
        "BIGTIFF": "YES",
    }
    tmp = path.with_suffix(".partial.tif")
    with rasterio.open(tmp, "w", **profile) as ds:
        ds.descriptions = ("B02", "B03", "B04", "B08")
        for y in range(0, height, 1024):
            h = min(1024, height - y)
            fields = rng.integers(300, 4000, (4, h // 64 + 1, width // 64 + 1)).astype(np.uint16)
            strip = np.repeat(np.repeat(fields, 64, axis=1), 64, axis=2)[:, :h, :width]
            ds.write(strip, window=((y, y + h), (0, width)))
    tmp.rename(path)
    return path


def make_model(path: Path) -> Path:
    import geoseg

    if not path.exists():
        geoseg.create_model(
            "unet",
            "resnet18",
            bands=["B02", "B03", "B04", "B08"],
            classes=6,
            chip_size=CHIP,
            overlap=OVERLAP,
            mean=[1500] * 4,
            std=[1000] * 4,
            pixel_size=10.0,
            name="bench-unet-r18",
        ).save(path)
    return path


def one(scene: Path, model: Path, model_only: bool) -> dict:
    """Run in a child process: predict one scene, report timings and this process's peak RSS."""
    import torch

    import geoseg
    from geoseg.core.grid import make_grid
    from geoseg.inference.backends import TorchRunner

    net = geoseg.load_model(model)
    out = WORK / f"{scene.stem}_classes.tif"
    t = time.perf_counter()
    result = geoseg.predict(scene, net, out, overwrite=True, batch_size=BATCH)
    total = time.perf_counter() - t
    record = {
        "scene": scene.name,
        "chips": result.chips_predicted,
        "total_s": total,
        "in_run_model_s": result.seconds["model"],
        "read_wait_s": result.seconds["read_wait"],
        "stitch_s": result.seconds["stitch"],
        "write_s": result.seconds["write"],
    }
    import rasterio

    with rasterio.open(scene) as ds:
        record["megapixels"] = ds.width * ds.height / 1e6
        width, height = ds.width, ds.height
    if model_only:
        grid = make_grid(width, height, CHIP, OVERLAP)
        runner = TorchRunner(net, device="cpu")
        x = np.random.default_rng(0).normal(size=(BATCH, 4, CHIP, CHIP)).astype(np.float32)
        batches = [min(BATCH, len(grid) - i) for i in range(0, len(grid), BATCH)]
        runner(x)  # warm-up
        t = time.perf_counter()
        for n in batches:
            runner(x[:n])
        record["model_only_s"] = time.perf_counter() - t
    record["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    record["torch_threads"] = torch.get_num_threads()
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small scenes only (a smoke run)")
    parser.add_argument("--one", nargs=3, metavar=("SCENE", "MODEL", "MODEL_ONLY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(Path(args.one[0]), Path(args.one[1]), args.one[2] == "1")))
        return
    WORK.mkdir(exist_ok=True)
    model = make_model(WORK / "bench_model.pt")
    rows = []
    for i, (width, height) in enumerate(SIZES["quick" if args.quick else "full"]):
        scene = make_scene(WORK / f"scene_{width}x{height}.tif", width, height)
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(scene), str(model), "1" if i == 0 else "0"],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    print(
        f"\nmachine: {platform.processor() or platform.machine()}, {rows[0]['torch_threads']} torch threads, "
        f"Python {platform.python_version()}"
    )
    print(f"{'scene':>26} {'chips':>6} {'time s':>8} {'Mpx/s':>6} {'peak RSS MB':>11} {'RSS vs first':>12} {'time/model':>10}")
    for r in rows:
        print(
            f"{r['scene']:>26} {r['chips']:>6} {r['total_s']:8.1f} {r['megapixels'] / r['total_s']:6.2f} "
            f"{r['peak_rss_mb']:11.0f} {r['peak_rss_mb'] / base['peak_rss_mb']:12.2f} "
            f"{r['total_s'] / r['in_run_model_s']:10.3f}"
        )
    if "model_only_s" in base:
        print(
            f"\n{base['scene']}: predict {base['total_s']:.1f} s, model alone on the same {base['chips']} chips "
            f"(no I/O) {base['model_only_s']:.1f} s, ratio {base['total_s'] / base['model_only_s']:.3f}"
        )
    (WORK / "results_predict.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
