"""Today's training recipe against the new one, on a spatial split of the bundled data and on shifted radiometry.

The bundled default model's config (configs/brandenburg_default.yaml: one Sentinel-2 L1C scene of Brandenburg,
1536 x 768 px, OpenStreetMap land-use polygons) is trained twice per seed, once per recipe, on the WEST part of
the scene only (columns 0-895, written as its own GeoTIFF, so nothing east of it is ever read: the trainer's own
validation blocks for picking the best epoch lie inside this part). Columns 896-1151 are a gap of one chip
(256 px) and columns 1152-1535 (384 x 768 px, about a quarter of the labels) are the held-out TEST part, written
as its own GeoTIFF: prediction there mirrors the test part at its edges and never sees the training part.

Every model is run with ``geoseg.predict`` (torch, CPU) on
- ``heldout``: the test part as it is;
- ``haze``: the test part with each band scaled by 0.8 and raised by an offset that falls with wavelength
  (+300 DN for B02 ... +100 DN for the SWIR bands), roughly a hazier, darker acquisition;
- ``bright``: the test part scaled by 1.15 with -100 DN per band (a brighter scene, another calibration);
and scored with ``geoseg.evaluate`` against the polygons (mIoU over classes present, per-class IoU, pixel
accuracy). The package data holds no second season or scene with pixel labels (../shared/data/README.md: the
other labelled set is a 1-band 0.5 m building image), so the radiometric shifts stand in for one.

    nice -n 10 .venv/bin/python benchmarks/bench_recipe.py [--seeds 0,1] [--recipes today,new] [--epochs N]
                                                           [--out benchmarks/output/recipe] [--threads N]

Trained runs are kept under OUT/runs/RECIPE-sSEED and not trained again (delete a folder to retrain), so two
invocations with different ``--recipes`` may train in parallel and a last one prints the table of all.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "brandenburg_default.yaml"
TRAIN_COLUMNS = (0, 896)
TEST_COLUMNS = (1152, 1536)  # a gap of 256 px (one chip) after the training part
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "today": {"augment": {"brightness": 0.05}, "train": {}},
    "new": {
        "augment": {"brightness": 0.0, "scale": 0.25, "gain": 0.2, "band_gain": 0.05, "offset": 0.1, "noise": 0.03},
        "train": {"warmup_epochs": 3},
    },
}
"""What each recipe sets on top of the config (today's recipe is the config as shipped before 0.2.0)."""
HAZE_OFFSETS = [300, 250, 200, 150, 150, 125, 125, 100, 100, 100]  # B02 B03 B04 B08 B05 B06 B07 B8A B11 B12
SHIFTS: dict[str, tuple[Any, Any]] = {"heldout": (1.0, 0), "haze": (0.8, HAZE_OFFSETS), "bright": (1.15, -100)}


def _scene(raw: dict[str, Any]) -> dict[str, Any]:
    scene = dict(raw["data"]["scenes"][0])
    for key in ("image", "labels"):
        scene[key] = str((CONFIG.parent / scene[key]).resolve())
    return scene


def prepare(out: Path) -> dict[str, Path]:
    """The training part and the test sets as GeoTIFFs in ``out`` (written once)."""
    import rasterio
    import yaml
    from rasterio.windows import Window

    source = _scene(yaml.safe_load(CONFIG.read_text()))["image"]
    out.mkdir(parents=True, exist_ok=True)
    paths = {"train": out / "train_west.tif", **{name: out / f"test_{name}.tif" for name in SHIFTS}}
    with rasterio.open(source) as ds:
        parts = {"train": TRAIN_COLUMNS, **{name: TEST_COLUMNS for name in SHIFTS}}
        for name, (c0, c1) in parts.items():
            if paths[name].exists():
                continue
            window = Window(c0, 0, c1 - c0, ds.height)
            data = ds.read(window=window).astype(np.float64)
            if name in SHIFTS:
                gain, offset = SHIFTS[name]
                data = data * gain + np.asarray(offset, dtype=np.float64).reshape(-1, 1, 1)
            profile = {**ds.profile, "width": c1 - c0, "transform": ds.window_transform(window)}
            profile.update(tiled=True, blockxsize=256, blockysize=256, compress="deflate")
            with rasterio.open(paths[name], "w", **profile) as dst:
                dst.write(np.clip(np.rint(data), 0, 65535).astype(ds.dtypes[0]))
                dst.descriptions = ds.descriptions
    return paths


def train_config(recipe: str, seed: int, image: Path, epochs: int | None, threads: int | None) -> dict[str, Any]:
    """The default config for ``recipe`` and ``seed``, trained on ``image`` (the training part)."""
    import yaml

    raw = yaml.safe_load(CONFIG.read_text())
    scene = _scene(raw)
    scene["image"] = str(image)
    raw["data"]["scenes"] = [scene]
    for section in ("augment", "train"):  # today's recipe: the pre-0.2.0 keys only, whatever the config now says
        for key in ("scale", "gain", "band_gain", "offset", "noise", "warmup_epochs"):
            raw[section].pop(key, None)
        raw[section].update(RECIPES[recipe][section])
    raw["train"].update({"seed": seed, "device": "cpu", "threads": threads})
    if epochs:
        raw["train"]["epochs"] = epochs
    return raw


def train_run(out: Path, recipe: str, seed: int, image: Path, epochs: int | None, threads: int | None) -> Path:
    """Train ``recipe`` with ``seed`` into OUT/runs/RECIPE-sSEED unless it is there; returns the run folder."""
    import geoseg

    run_dir = out / "runs" / f"{recipe}-s{seed}"
    if (run_dir / "bench.json").is_file():
        return run_dir
    started = time.perf_counter()
    result = geoseg.train(train_config(recipe, seed, image, epochs, threads), run_dir)
    record = {
        "recipe": recipe,
        "seed": seed,
        "wall_s": round(time.perf_counter() - started, 1),
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "val_miou": result.best_miou,
    }
    (run_dir / "bench.json").write_text(json.dumps(record, indent=2))
    print(f"trained {recipe} seed {seed}: {record}", flush=True)
    return run_dir


def score(run_dir: Path, tests: dict[str, Path], labels: str, field: str) -> dict[str, Any]:
    """Scores of the run's best model on every test set (cached in the run folder)."""
    import geoseg
    from geoseg.training.evaluation import evaluate

    cached = run_dir / "scores.json"
    if cached.is_file():
        return dict(json.loads(cached.read_text()))
    model = geoseg.load_model(run_dir / "model.pt")
    scores = {}
    for name, image in tests.items():
        pred = run_dir / f"pred_{name}.tif"
        geoseg.predict(image, model, pred, device="cpu", backend="torch", overwrite=True)
        m = evaluate(pred, labels, label_field=field)
        scores[name] = {
            "miou": m["mean_iou"],
            "accuracy": m["accuracy"],
            "iou": {c["name"]: c["iou"] for c in m["classes"]},
        }
    cached.write_text(json.dumps(scores, indent=2))
    return scores


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def table(rows: list[dict[str, Any]]) -> str:
    """A markdown table: one row per recipe, seed and test set, and the means over seeds."""
    classes = list(rows[0]["scores"]["heldout"]["iou"])
    head = ["recipe", "seed", "set", "mIoU", "pixel acc.", *classes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        for name, s in row["scores"].items():
            cells = [row["recipe"], str(row["seed"]), name, _fmt(s["miou"]), _fmt(s["accuracy"])]
            lines.append("| " + " | ".join(cells + [_fmt(s["iou"][c]) for c in classes]) + " |")
    lines.append("")
    lines.append("| recipe | set | mean mIoU over seeds | mean pixel acc. | seeds |")
    lines.append("|---|---|---|---|---|")
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        mine = [r for r in rows if r["recipe"] == recipe]
        for name in SHIFTS:
            miou = np.mean([r["scores"][name]["miou"] for r in mine])
            acc = np.mean([r["scores"][name]["accuracy"] for r in mine])
            lines.append(f"| {recipe} | {name} | {miou:.3f} | {acc:.3f} | {len(mine)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--recipes", default="today,new")
    parser.add_argument("--epochs", type=int, default=None, help="override train.epochs (default: the config's)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "output" / "recipe")
    args = parser.parse_args()
    import yaml

    paths = prepare(args.out)
    scene = _scene(yaml.safe_load(CONFIG.read_text()))
    tests = {name: paths[name] for name in SHIFTS}
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for recipe in args.recipes.split(","):
            run_dir = train_run(args.out, recipe, seed, paths["train"], args.epochs, args.threads)
            record = json.loads((run_dir / "bench.json").read_text())
            rows.append({**record, "scores": score(run_dir, tests, scene["labels"], scene["label_field"])})
    for row in rows:
        print(
            f"{row['recipe']} seed {row['seed']}: {row['epochs_run']} epochs (best {row['best_epoch']}, "
            f"val mIoU {_fmt(row['val_miou'])}), {row['wall_s']:.0f} s"
        )
    print(table(rows))
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
