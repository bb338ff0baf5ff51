"""Start-up of small jobs: `geoseg info` and `geoseg vectorize` on a tiny map, against Python itself and gdal_polygonize.

Small jobs are dominated by start-up (imports), not by work. Each command
runs in its own process ROUNDS times; the fastest run counts (the machine is
shared). Also lists the heavy libraries each command imports (it should not
import torch, segmentation-models-pytorch, onnxruntime, matplotlib or dask).

    .venv/bin/python benchmarks/bench_startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "output"
HEAVY = ("torch", "segmentation_models_pytorch", "onnxruntime", "matplotlib", "dask", "geopandas", "scipy")
GEOSEG = [sys.executable, "-m", "geoseg"]


def tiny_map(path: Path) -> Path:
    """A 256 x 256 class map of 4 classes in blocks."""
    import rasterio
    from affine import Affine

    data = np.kron(np.random.default_rng(0).integers(0, 4, (8, 8)), np.ones((32, 32))).astype(np.uint8)
    profile = {"driver": "GTiff", "width": 256, "height": 256, "count": 1, "dtype": "uint8", "nodata": 255}
    profile |= {"crs": "EPSG:32633", "transform": Affine(10, 0, 300000, 0, -10, 5900000)}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data, 1)
    return path


def fastest(command: list[str], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
    return best


def imported(args: list[str]) -> list[str]:
    """The heavy libraries a geoseg command imports."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['geoseg', *{args!r}]\n"
        "try:\n    runpy.run_module('geoseg', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 - our own printed list


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE (benchmarks/suite.py)")
    args = parser.parse_args()
    figures: dict[str, dict] = {}
    WORK.mkdir(exist_ok=True)
    classes = tiny_map(WORK / "startup_classes.tif")
    out = WORK / "startup_polygons.gpkg"
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"], None),
        ("geoseg --version", [*GEOSEG, "--version"], ["--version"]),
        ("geoseg info classes.tif", [*GEOSEG, "info", str(classes)], ["info", str(classes)]),
        (
            "geoseg vectorize (256², GPKG)",
            [*GEOSEG, "vectorize", str(classes), "-o", str(out), "--overwrite", "-q"],
            ["vectorize", str(classes), "-o", str(out), "--overwrite", "-q"],
        ),
    ]
    gdal = shutil.which("gdal_polygonize.py")
    print(f"{'command':>32} {'fastest s':>10}  heavy imports")
    for label, command, geoseg_args in rows:
        heavy = imported(geoseg_args) if geoseg_args else []
        seconds = fastest(command, args.rounds)
        figures[label] = {"fastest_s": round(seconds, 3), "heavy_imports": heavy}
        print(f"{label:>32} {seconds:10.2f}  {', '.join(heavy) or '-'}", flush=True)
    if gdal:
        target = WORK / "startup_gdal.gpkg"

        def polygonize() -> list[str]:
            target.unlink(missing_ok=True)
            return [gdal, "-q", str(classes), "-f", "GPKG", str(target), "polygons", "class"]

        best = float("inf")
        for _ in range(args.rounds):
            command = polygonize()
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            best = min(best, time.perf_counter() - started)
        figures["gdal_polygonize.py (256², GPKG)"] = {"fastest_s": round(best, 3), "heavy_imports": []}
        print(f"{'gdal_polygonize.py (256², GPKG)':>32} {best:10.2f}  -")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
