"""Vectorize benchmark: geoseg vectorize against GDAL's gdal_polygonize.py on the same class raster.

Generates an 8192 x 8192 uint8 class map with realistic regions (smooth
random fields cut into 8 classes: large parcels with ragged edges, small
patches and single pixels), then polygonizes it with each tool in its own
process and prints wall time and peak RSS. geoseg also computes its
attributes (class name, area, perimeter); gdal_polygonize writes the class
value only.

    .venv/bin/python benchmarks/bench_vectorize.py            # 8192 x 8192
    .venv/bin/python benchmarks/bench_vectorize.py --size 2048
    .venv/bin/python benchmarks/bench_vectorize.py --tall 4     # + geoseg on 8192 wide x 1, 2, 4 maps tall

``--tall N`` also stacks 1..N independent 8192 x 8192 maps (a nodata row
between them) and vectorizes them with geoseg: the polygon count grows with
the height while the largest region stays the same, which shows whether
memory grows with the polygon count (it should not: polygons are streamed to
the file as regions finish).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "output"


def make_classes(path: Path, size: int, seed: int | None = None) -> Path:
    import rasterio
    from affine import Affine
    from scipy import ndimage

    if path.exists():
        return path
    rng = np.random.default_rng(size if seed is None else seed)
    field = ndimage.zoom(rng.random((size // 64, size // 64)), 64, order=3)[:size, :size]
    field += 0.08 * ndimage.zoom(rng.random((size // 8, size // 8)), 8, order=1)[:size, :size]
    edges = np.quantile(field, np.linspace(0, 1, 9)[1:-1])
    classes = np.digitize(field, edges).astype(np.uint8)
    speckle = rng.random((size, size)) < 0.002
    classes[speckle] = rng.integers(0, 8, speckle.sum())
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "uint8",
        "nodata": 255,
        "crs": "EPSG:32633",
        "transform": Affine(10, 0, 300000, 0, -10, 5900000),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(classes, 1)
    return path


def make_tall(path: Path, size: int, tiles: int) -> Path:
    """``tiles`` independent size x size maps stacked vertically, a nodata row between them."""
    import rasterio

    if path.exists():
        return path
    parts = [make_classes(WORK / f"classes_{size}_seed{i}.tif", size, seed=size + i) for i in range(tiles)]
    with rasterio.open(parts[0]) as first:
        profile = first.profile | {"height": tiles * (size + 1) - 1}
    with rasterio.open(path, "w", **profile) as out:
        for i, part in enumerate(parts):
            with rasterio.open(part) as src:
                for y in range(0, size, 1024):
                    window = rasterio.windows.Window(0, y, size, min(1024, size - y))
                    out.write(
                        src.read(1, window=window), 1, window=rasterio.windows.Window(0, i * (size + 1) + y, size, window.height)
                    )
            if i < tiles - 1:
                out.write(np.full((1, size), 255, np.uint8), 1, window=rasterio.windows.Window(0, i * (size + 1) + size, size, 1))
    return path


def measure(command: list[str]) -> dict:
    out = subprocess.run([sys.executable, str(HERE / "measure.py"), "--", *command], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument(
        "--tall",
        type=int,
        default=0,
        metavar="N",
        help="also vectorize 1..N stacked independent maps with geoseg (memory against height)",
    )
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    classes = make_classes(WORK / f"classes_{args.size}.tif", args.size)
    rows = []
    geoseg = [
        str(Path(sys.executable).with_name("geoseg")),
        "vectorize",
        str(classes),
        "-o",
        str(WORK / "geoseg_polygons.gpkg"),
        "--overwrite",
        "--progress",
        "none",
    ]
    rows.append({"tool": "geoseg vectorize (GPKG, with attributes)", **measure(geoseg)})
    gdal = shutil.which("gdal_polygonize.py")
    if gdal:
        target = WORK / "gdal_polygons.gpkg"
        target.unlink(missing_ok=True)
        rows.append(
            {
                "tool": "gdal_polygonize.py (GPKG, class value only)",
                **measure([gdal, "-q", str(classes), "-f", "GPKG", str(target), "polygons", "class"]),
            }
        )
    else:
        print("gdal_polygonize.py not found (Debian: apt-get install gdal-bin): geoseg alone")
    for r in rows:
        print(json.dumps(r))
    print(f"\n{args.size} x {args.size} class raster")
    print(f"{'tool':>45} {'time s':>8} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['tool']:>45} {r['wall_s']:8.1f} {r['peak_rss_mb']:12.0f}")
    if len(rows) == 2:
        print(f"\ngdal_polygonize time / geoseg time = {rows[1]['wall_s'] / rows[0]['wall_s']:.2f}")
    tall = []
    for tiles in [t for t in (1, 2, 4, 8) if t <= args.tall]:
        path = make_tall(WORK / f"classes_{args.size}x{tiles}.tif", args.size, tiles)
        out = WORK / "geoseg_tall.gpkg"
        run = measure([geoseg[0], "vectorize", str(path), "-o", str(out), "--overwrite", "--progress", "none"])
        import pyogrio

        tall.append(
            {"height": tiles * (args.size + 1) - 1, "polygons": pyogrio.read_info(out, layer="polygons")["features"], **run}
        )
    if tall:
        print(f"\ngeoseg vectorize, {args.size} wide, independent maps stacked")
        print(f"{'height':>8} {'polygons':>9} {'time s':>8} {'peak RSS MB':>12}")
        for r in tall:
            print(f"{r['height']:>8} {r['polygons']:>9} {r['wall_s']:8.1f} {r['peak_rss_mb']:12.0f}")
    (WORK / "results_vectorize.json").write_text(json.dumps({"tools": rows, "tall": tall}, indent=2))


if __name__ == "__main__":
    main()
