"""The demo behind `make demo`: run the whole pipeline on the bundled Sentinel-2 sample.

The model is made with ``geoseg.create_model`` (random weights: the class map
shows the pipeline, not a trained result). It is saved as a checkpoint and
run through the ``geoseg run`` command, exactly as a user would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import geoseg

ROOT = Path(__file__).resolve().parents[1]
SCENE = ROOT / "data_samples" / "brandenburg_s2_512.tif"
OUT = ROOT / "demo_output"


def main() -> int:
    OUT.mkdir(exist_ok=True)
    model = geoseg.create_model(
        "unet", "resnet18",
        bands=["B02", "B03", "B04", "B08"],
        classes=[{"name": "water", "color": "#1f78b4"}, {"name": "forest", "color": "#33a02c"},
                 {"name": "field", "color": "#ffd92f"}, {"name": "built-up", "color": "#e31a1c"}],
        chip_size=256, overlap=0.25, mean=[1400, 1300, 1200, 2500], std=[500, 500, 600, 900],
        pixel_size=10.0, name="demo-untrained",
    )
    model_path = model.save(OUT / "demo_model.pt")
    result = OUT / "result"
    command = [sys.executable, "-m", "geoseg", "run", str(SCENE), "-m", str(model_path), "-o", str(result),
               "--min-area", "500", "--simplify", "5", "--overwrite", "--progress", "bar", "-v"]
    print("$ geoseg " + " ".join(command[3:]), flush=True)
    code = subprocess.call(command)
    if code == 0:
        print(f"\nWrote {', '.join(sorted(p.name for p in result.iterdir()))} in {result}")
        print(f"Look at {result / 'preview.png'}; open classes.tif and polygons.gpkg in QGIS (styled on open).")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
