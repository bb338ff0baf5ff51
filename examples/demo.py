"""The demo behind `make demo`: the whole pipeline on the bundled Sentinel-2 sample with the default model.

Runs the ``geoseg run`` command exactly as a user would, without ``-m``: the
bundled default model (8 OpenStreetMap land-use classes, trained on the
Brandenburg scene; `geoseg info default`) labels the 512 x 512 sample scene.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "data_samples" / "brandenburg_s2_512.tif"
OUT = ROOT / "demo_output"


def main() -> int:
    OUT.mkdir(exist_ok=True)
    result = OUT / "result"
    command = [
        sys.executable,
        "-m",
        "geoseg",
        "run",
        str(SCENE),
        "-o",
        str(result),
        "--min-area",
        "500",
        "--simplify",
        "5",
        "--overwrite",
        "--progress",
        "bar",
        "-v",
    ]
    print("$ geoseg " + " ".join(command[3:]), flush=True)
    code = subprocess.call(command)
    if code == 0:
        print(f"\nWrote {', '.join(sorted(p.name for p in result.iterdir()))} in {result}")
        print(f"Look at {result / 'preview.png'}; open classes.tif and polygons.gpkg in QGIS (styled on open).")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
