"""Change benchmark: `geoseg change` on two generated class maps, time and peak memory against map size.

BEFORE is a map of 8 classes in parcels (a smooth random field cut into
classes, as in bench_vectorize.py); AFTER is BEFORE with parcels of 64 x 64
pixels changed to another class at random (about 3% of the area). Each size
runs as `geoseg change` in its own process (interpreter start included):
two passes over both maps, transitions.tif, change polygons, matrix, preview.

    .venv/bin/python benchmarks/bench_change.py                     # 4096², 8192² and 10240² (10^8 pixels)
    .venv/bin/python benchmarks/bench_change.py --sizes 2048 4096
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "output"
sys.path.insert(0, str(HERE))

from bench_vectorize import make_classes, measure  # noqa: E402


def make_after(before: Path, path: Path, seed: int = 7) -> Path:
    """BEFORE with random 64 x 64 parcels set to another class, written strip by strip."""
    import rasterio
    from rasterio.windows import Window

    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    with rasterio.open(before) as src:
        profile = src.profile
        size = src.width
        blocks = rng.random((size // 64 + 1, size // 64 + 1)) < 0.03
        shift = rng.integers(1, 8, blocks.shape)
        with rasterio.open(path, "w", **profile) as out:
            for y in range(0, size, 1024):
                window = Window(0, y, size, min(1024, size - y))
                data = src.read(1, window=window)
                rows = (np.arange(y, y + window.height) // 64)[:, None]
                cols = (np.arange(size) // 64)[None, :]
                changed = blocks[rows, cols] & (data != 255)
                data[changed] = (data[changed] + shift[rows, cols][changed]) % 8
                out.write(data, 1, window=window)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192, 10240])
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    rows = []
    for size in args.sizes:
        before = make_classes(WORK / f"classes_{size}.tif", size)
        after = make_after(before, WORK / f"classes_{size}_after.tif")
        outdir = WORK / f"change_{size}"
        command = [
            str(Path(sys.executable).with_name("geoseg")),
            "change",
            str(before),
            str(after),
            "-o",
            str(outdir),
            "--overwrite",
            "--progress",
            "none",
        ]
        result = measure(command)
        assert result["rc"] == 0, result["stderr"]
        summary = json.loads((outdir / "summary.json").read_text())
        rows.append(
            {
                "size": size,
                "pixels": size * size,
                "changed_share": summary["changed_share"],
                "polygons": summary["polygons"],
                "transitions": summary["transitions"],
                **{k: result[k] for k in ("wall_s", "peak_rss_mb")},
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'map':>12} {'Mpx':>6} {'changed':>8} {'polygons':>9} {'time s':>7} {'Mpx/s':>6} {'peak RSS MB':>12}")
    for r in rows:
        mpx = r["pixels"] / 1e6
        print(
            f"{r['size']:>6} x {r['size']:<5} {mpx:6.0f} {100 * r['changed_share']:7.2f}% {r['polygons']:9d} "
            f"{r['wall_s']:7.1f} {mpx / r['wall_s']:6.1f} {r['peak_rss_mb']:12.0f}"
        )


if __name__ == "__main__":
    main()
