"""geoseg against the field, side by side in one run: GeoDeep, whole-scene stitching, gdal_polygonize, model-only.

One command runs everything and prints one table, writes
``benchmarks/results.json`` and plots time and peak memory against scene
size (``benchmarks/plots/``, one line per tool):

    .venv/bin/python benchmarks/suite.py            # full run, 26–29 minutes on 2 cores
    .venv/bin/python benchmarks/suite.py --quick    # 1024² and 2048² only, about 3 minutes

Every measurement runs in a fresh process (its own peak RSS, no warm caches
shared between tools). geoseg, GeoDeep and the model alone run twice in
alternation and the faster run of each counts: the machine is shared, and
back-to-back runs differ by up to 10%. Times are of the work after imports; geoseg's time is
loading the model (and, for a ``.pt`` checkpoint on the onnxruntime backend,
exporting it in memory) plus predicting, and ``predict_over_model`` divides
the predict part by the model alone on the same chips. The command-line
tools in the vectorize comparison are timed whole, interpreter start
included, with ``benchmarks/measure.py``.

What runs (generated scenes compress well: 64-px fields of constant values):

* **RGB uint8 scenes** 1024² to 8192² (geoseg also 16384²) with one 3-band
  ONNX model (Unet-resnet18, 256-px chips, 25% overlap, random weights,
  exported by ``geoseg export``): geoseg (onnxruntime backend), GeoDeep
  (``geodeep.run``), whole-scene stitching, and the model alone on exactly
  the chips geoseg predicts.
* **Whole-scene stitching** is written below as TerraTorch, geoai and solaris
  do it: full-size float32 accumulators for every class and for the weights,
  each chip's probabilities added in, argmax at the end. Clearly not geoseg
  code: it is the approach geoseg's streaming stitcher replaces.
* **Larger chips**: the same weights (the .pt checkpoint, exported to ONNX
  in memory at the asked size) with 512-px chips and a 64-px overlap on the
  4096² RGB scene, against GeoDeep's 256-px chips with 25% overlap.
* **A scene with nodata** (a 4096² RGB scene whose left 40% is nodata, as at
  the edge of a satellite swath): geoseg skips chips with no valid pixel,
  GeoDeep predicts them all.
* **Multispectral uint16 scenes** for geoseg alone (GeoDeep takes only 3
  bands): 4 bands at 4096² and 4096 x 16384 (memory against height), and 10
  bands with the bundled default model at 2048² and 4096².
* **Real scenes**: the Brandenburg Sentinel-2 scene (10 bands, bundled
  default model; from ``../shared/data`` when present) with its model-only
  ratio; and its RGB bands with a small 3-band model trained here in about a
  minute (forest against open land), where geoseg's and GeoDeep's class maps
  are compared (a trained model: random weights give maps of noise, where
  GeoDeep's median filter alone makes them differ).
* **Vectorize**: ``geoseg vectorize`` against ``gdal_polygonize.py`` on
  generated class maps of 2048² to 8192² (geoseg also 16384²).
* **The pipeline's own figures**, each by its script (figures under
  ``"pipeline"`` in results.json): the I/O floor against predict with a
  zero-cost model (``bench_floor.py``: 4096² and 8192², 3 and 10 bands), the
  bundled model as int8 against float32 (``bench_quantize.py``: agreement and
  speed) and the start-up of small jobs (``bench_startup.py``).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "output" / "suite"
PLOTS = HERE / "plots"
SHARED = ROOT.parent / "shared" / "data"
CHIP, OVERLAP = 256, 0.25


# ----------------------------------------------------------------------------------------------- inputs


def make_scene(path: Path, width: int, height: int, bands: int, dtype: str, nodata_share: float = 0.0) -> Path:
    """Fields of 64 px with constant random values per band (compress to a few MB); the left ``nodata_share``
    of the columns is nodata 0."""
    import rasterio
    from affine import Affine

    if path.exists():
        return path
    rng = np.random.default_rng(width * 7 + height + bands)
    hi = 250 if dtype == "uint8" else 4000
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": bands,
        "dtype": dtype,
        "crs": "EPSG:32633",
        "transform": Affine(10, 0, 300000, 0, -10, 5900000),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
        "nodata": 0 if nodata_share else None,
    }
    if dtype == "uint8" and bands == 3:
        profile["photometric"] = "RGB"
    tmp = path.with_suffix(".partial.tif")
    cut = int(width * nodata_share)
    with rasterio.open(tmp, "w", **profile) as ds:
        for y in range(0, height, 1024):
            h = min(1024, height - y)
            fields = rng.integers(10, hi, (bands, h // 64 + 1, width // 64 + 1)).astype(dtype)
            strip = np.repeat(np.repeat(fields, 64, axis=1), 64, axis=2)[:, :h, :width]
            strip[:, :, :cut] = 0
            ds.write(strip, window=((y, y + h), (0, width)))
    tmp.rename(path)
    return path


def make_models() -> dict[str, Path]:
    """The 3-band Unet-resnet18 (random weights) as .pt and .onnx, and a 4-band one."""
    import geoseg
    from geoseg.model.onnx import export_onnx

    rgb, rgb_onnx, four = WORK / "unet_r18_rgb.pt", WORK / "unet_r18_rgb.onnx", WORK / "unet_r18_4band.pt"
    if not rgb.exists():
        geoseg.create_model(
            "unet",
            "resnet18",
            bands=["red", "green", "blue"],
            classes=6,
            chip_size=CHIP,
            overlap=OVERLAP,
            mean=[128.0] * 3,
            std=[64.0] * 3,
            pixel_size=10.0,
            name="bench-unet-r18-rgb",
        ).save(rgb)
    if not rgb_onnx.exists():
        export_onnx(rgb, rgb_onnx)
    if not four.exists():
        geoseg.create_model(
            "unet",
            "resnet18",
            bands=["B02", "B03", "B04", "B08"],
            classes=6,
            chip_size=CHIP,
            overlap=OVERLAP,
            mean=[2000.0] * 4,
            std=[1000.0] * 4,
            pixel_size=10.0,
            name="bench-unet-r18-4band",
        ).save(four)
    return {"rgb": rgb, "rgb_onnx": rgb_onnx, "4band": four}


def train_rgb_model() -> Path:
    """A small 3-band model that tells forest from open land on the Brandenburg RGB bands (for agreement)."""
    import rasterio

    import geoseg
    from geoseg.model.onnx import export_onnx

    onnx_path = WORK / "forest_rgb.onnx"
    if onnx_path.exists():
        return onnx_path
    source = ROOT / "data_samples" / "brandenburg_s2.tif"
    rgb = WORK / "brandenburg_rgb.tif"
    with rasterio.open(source) as ds:
        names = list(ds.descriptions)
        data = ds.read([names.index(b) + 1 for b in ("B04", "B03", "B02")]).astype(np.float64)
        profile = ds.profile | {"count": 3, "dtype": "uint8", "nodata": None, "photometric": "RGB"}
    scaled = np.clip(data / np.percentile(data, 99) * 255, 1, 255).astype(np.uint8)
    with rasterio.open(rgb, "w", **profile) as out:
        out.write(scaled)
    config = {
        "name": "forest-rgb",
        "model": {
            "arch": "unet",
            "encoder": "resnet18",
            "chip_size": 128,
            "overlap": 0.25,
            "params": {"encoder_depth": 3, "decoder_channels": [32, 16, 8]},
        },
        "data": {
            "scenes": [{"image": str(rgb), "labels": str(ROOT / "data_samples" / "brandenburg_osm_mask.tif")}],
            "classes": [{"name": "forest", "values": [1]}, {"name": "open land", "values": [2, 3, 4, 8]}],
            "ignore_values": [5, 6, 7],
            "stride": 64,
        },
        "split": {"val_fraction": 0.2, "block_size": 128},
        "train": {"epochs": 4, "samples_per_epoch": 96, "batch_size": 8, "lr": 0.005, "loss": "ce", "threads": 2},
    }
    shutil.rmtree(WORK / "forest_run", ignore_errors=True)
    result = geoseg.train(config, WORK / "forest_run")
    export_onnx(result.model_path, onnx_path)
    return onnx_path


# ----------------------------------------------------------------------------------------------- jobs (child processes)


def job_geoseg(scene: str, model: str, out: str, backend: str = "auto", chip_size: str = "", overlap: str = "") -> dict:
    """Load the model (and export it to ONNX in memory when the backend asks, as predict would), then predict."""
    import geoseg
    from geoseg.core.grid import make_grid
    from geoseg.inference.backends import make_runner
    from geoseg.inference.predict import open_model
    from geoseg.io.raster import open_scene

    if str(model).endswith(".onnx"):
        import onnxruntime  # noqa: F401  (imported before the clock, as GeoDeep's are)
    t = time.perf_counter()
    net = open_model(model, backend)
    chip = int(chip_size) if chip_size else int(net.card.chip_size)
    with open_scene(scene) as ds:
        count = len(make_grid(ds.width, ds.height, chip, overlap or net.card.overlap))
    make_runner(net, backend, "auto", False, chip, count, {})  # an export is kept for the model
    load = time.perf_counter() - t
    t = time.perf_counter()
    result = geoseg.predict(
        scene,
        net,
        out,
        overwrite=True,
        backend=backend,  # default batch: 2 on the CPU
        chip_size=chip,
        overlap=overlap or None,
    )
    predict_s = time.perf_counter() - t
    return {
        "wall_s": load + predict_s,
        "load_s": load,
        "predict_s": predict_s,
        "chips": result.chips_predicted,
        "skipped": result.chips_skipped,
        "model_s": result.seconds.get("model", 0.0),
        "read_wait_s": result.seconds.get("read_wait", 0.0),
    }


def _chips_and_runner(scene: str, model: str):
    """Exactly the chips geoseg predicts (same grid, nodata chips dropped), read and normalized as predict does."""
    from geoseg.core.bands import select_bands
    from geoseg.core.grid import make_grid
    from geoseg.inference.backends import default_batch, make_runner
    from geoseg.inference.batches import iter_batches
    from geoseg.inference.predict import open_model
    from geoseg.io.raster import open_scene, read_window, scene_has_mask

    net = open_model(model)
    ds = open_scene(scene)
    indexes, _ = select_bands(ds.descriptions, net.card.bands, None, net.card.bands_are_named)
    grid = make_grid(ds.width, ds.height, net.card.chip_size, net.card.overlap, ds.transform)
    masked = scene_has_mask(ds)
    chips = list(grid)
    runner, net = make_runner(net, "auto", "cpu", False, net.card.chip_size, len(chips), {})

    def read(chip):
        return read_window(ds, chip.window, indexes, masked=masked)

    return ds, grid, net, runner, iter_batches(chips, read, net.normalize, default_batch(runner.device))


def job_model_only(scene: str, model: str) -> dict:
    """The model alone: forward passes on the chips geoseg predicts, already in memory (no reading, no stitching).

    The first call is timed too (its one-off set-up is part of running those chips, in predict as here). As
    many calls run at once as predict runs (``runner.lanes``: two one-thread onnxruntime calls on the CPU)."""
    from geoseg.core.threads import run_ahead

    ds, _, _, runner, batches = _chips_and_runner(scene, model)
    data = [b.data for b in batches if b.chips]
    t = time.perf_counter()
    for _ in run_ahead(data, runner, getattr(runner, "lanes", 1)):
        pass
    return {"wall_s": time.perf_counter() - t, "chips": sum(len(x) for x in data)}


def job_whole_scene(scene: str, model: str, out: str) -> dict:
    """Whole-scene stitching as TerraTorch, geoai and solaris do it: full-size float accumulators per class."""
    import rasterio

    from geoseg.core.threads import run_ahead

    t = time.perf_counter()
    ds, grid, net, runner, batches = _chips_and_runner(scene, model)
    k = net.card.num_classes
    acc = np.zeros((k, ds.height, ds.width), dtype=np.float32)  # every class, every pixel of the scene
    weight = np.zeros((ds.height, ds.width), dtype=np.float32)
    chips = 0
    full = (b for b in batches if b.chips)  # the model runs as in predict: runner.lanes calls at once
    for batch, probs in run_ahead(full, lambda b: runner(b.data), getattr(runner, "lanes", 1)):
        for chip, p in zip(batch.chips, probs):
            h, w = min(chip.y1, ds.height) - chip.y0, min(chip.x1, ds.width) - chip.x0
            acc[:, chip.y0 : chip.y0 + h, chip.x0 : chip.x0 + w] += p[:, :h, :w]
            weight[chip.y0 : chip.y0 + h, chip.x0 : chip.x0 + w] += 1
        chips += len(batch.chips)
    classes = acc.argmax(axis=0).astype(np.uint8)
    classes[weight == 0] = 255
    profile = {
        "driver": "GTiff",
        "width": ds.width,
        "height": ds.height,
        "count": 1,
        "dtype": "uint8",
        "crs": ds.crs,
        "transform": ds.transform,
        "nodata": 255,
        "tiled": True,
        "compress": "deflate",
    }
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(classes, 1)
    return {"wall_s": time.perf_counter() - t, "chips": chips}


def job_geodeep(scene: str, model: str, out: str) -> dict:
    import geodeep
    import rasterio

    t = time.perf_counter()
    mask = geodeep.run(scene, model, output_type="raw")
    wall = time.perf_counter() - t
    with rasterio.open(scene) as ds:
        profile = {
            "driver": "GTiff",
            "width": ds.width,
            "height": ds.height,
            "count": 1,
            "dtype": "uint8",
            "crs": ds.crs,
            "transform": ds.transform,
            "tiled": True,
            "compress": "deflate",
        }
    with rasterio.open(out, "w", **profile) as dst:  # after the clock: GeoDeep itself returns an array
        dst.write(mask.astype(np.uint8), 1)
    return {"wall_s": wall}


def job_prepare() -> dict:
    """Models and the trained RGB model, made in a child so the suite's own process stays small."""
    paths = {k: str(v) for k, v in make_models().items()}
    paths["forest"] = str(train_rgb_model())
    return {"wall_s": 0.0, "paths": paths}


JOBS = {
    "geoseg": job_geoseg,
    "model_only": job_model_only,
    "whole_scene": job_whole_scene,
    "geodeep": job_geodeep,
    "prepare": job_prepare,
}


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux: VmHWM, which starts afresh at exec (``ru_maxrss`` keeps the parent's peak
    at fork, which would count the suite's own memory)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale / (1024 if scale == 1 else 1)


def child(name: str, args: list[str]) -> None:
    record = JOBS[name](*args)
    record["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(record))


def best_of(runs: int, *jobs: tuple) -> list[dict]:
    """Run the jobs in alternation ``runs`` times; keep each job's fastest run (this machine is shared and noisy)."""
    best: list[dict | None] = [None] * len(jobs)
    for _ in range(runs):
        for i, job in enumerate(jobs):
            record = run_job(*job)
            if best[i] is None or record["wall_s"] < best[i]["wall_s"]:
                best[i] = record
    return best  # type: ignore[return-value]


def run_job(name: str, *args: object) -> dict:
    done = subprocess.run([sys.executable, __file__, "--job", name, *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{name} {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def agreement(a: Path, b: Path) -> float:
    """Share of pixels valid in both maps where the classes agree."""
    import rasterio

    with rasterio.open(a) as x, rasterio.open(b) as y:
        p, q = x.read(1), y.read(1)
    both = (p != 255) & (q != 255)
    return float((p[both] == q[both]).mean())


# ----------------------------------------------------------------------------------------------- the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1024² and 2048² only (a smoke run)")
    parser.add_argument("--job", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        child(args.job[0], args.job[1:])
        return
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    models = {k: Path(v) for k, v in run_job("prepare")["paths"].items()}
    peer_sizes = [1024, 2048] if args.quick else [1024, 2048, 4096, 8192]
    geoseg_only = [] if args.quick else [16384]
    rows: list[dict] = []

    def add(group: str, tool: str, scene: str, pixels: int, record: dict, **extra: object) -> dict:
        row = {"group": group, "tool": tool, "scene": scene, "megapixels": round(pixels / 1e6, 2), **record, **extra}
        rows.append(row)
        print(json.dumps(row), flush=True)
        return row

    # RGB uint8: geoseg, model only, whole-scene stitching, GeoDeep (the timing pairs best of 2, in alternation)
    for size in peer_sizes + geoseg_only:
        scene = make_scene(WORK / f"rgb_{size}.tif", size, size, 3, "uint8")
        name = f"RGB uint8 {size}²"
        ours_job = ("geoseg", scene, models["rgb_onnx"], WORK / f"geoseg_rgb_{size}.tif", "onnx")
        if size not in peer_sizes:
            add("rgb", "geoseg", name, size * size, run_job(*ours_job))
            continue
        jobs = [ours_job, ("geodeep", scene, models["rgb_onnx"], WORK / f"geodeep_rgb_{size}.tif")]
        if size <= 4096:
            jobs.append(("model_only", scene, models["rgb_onnx"]))
        records = best_of(2, *jobs)
        ours = add("rgb", "geoseg", name, size * size, records[0])
        deep = add("rgb", "GeoDeep", name, size * size, records[1])
        ours["geodeep_over_geoseg"] = round(deep["wall_s"] / ours["wall_s"], 3)
        if size <= 4096:
            only = add("rgb", "model only", name, size * size, records[2])
            ours["predict_over_model"] = round(ours["predict_s"] / only["wall_s"], 3)
        add(
            "rgb",
            "whole-scene stitching",
            name,
            size * size,
            run_job("whole_scene", scene, models["rgb_onnx"], WORK / f"whole_rgb_{size}.tif"),
        )

    # the same weights with 512-px chips and a 64-px overlap (the model is fully convolutional): less overlap work
    size = 2048 if args.quick else 4096
    scene = WORK / f"rgb_{size}.tif"
    deep = next(r for r in rows if r["tool"] == "GeoDeep" and r["scene"] == f"RGB uint8 {size}²")
    big = add(
        "rgb 512",
        "geoseg, 512-px chips",
        f"RGB uint8 {size}²",
        size * size,
        run_job("geoseg", scene, models["rgb"], WORK / "geoseg_rgb_512.tif", "onnx", 512, "64px"),
    )
    big["geodeep_over_geoseg"] = round(deep["wall_s"] / big["wall_s"], 3)

    # nodata: geoseg skips chips with no valid pixel, GeoDeep predicts them
    size = 2048 if args.quick else 4096
    scene = make_scene(WORK / f"rgb_{size}_nodata.tif", size, size, 3, "uint8", nodata_share=0.4)
    name = f"RGB uint8 {size}², left 40% nodata"
    records = best_of(
        2,
        ("geoseg", scene, models["rgb_onnx"], WORK / "geoseg_nodata.tif", "onnx"),
        ("geodeep", scene, models["rgb_onnx"], WORK / "geodeep_nodata.tif"),
    )
    ours = add("nodata", "geoseg", name, size * size, records[0])
    deep = add("nodata", "GeoDeep", name, size * size, records[1])
    ours["geodeep_over_geoseg"] = round(deep["wall_s"] / ours["wall_s"], 3)

    # multispectral uint16, geoseg alone
    multi = [(4096, 4096, 4), (4096, 16384, 4), (2048, 2048, 10), (4096, 4096, 10)]
    if args.quick:
        multi = [(1024, 1024, 4), (1024, 4096, 4), (1024, 1024, 10)]
    for width, height, bands in multi:
        scene = make_scene(WORK / f"ms{bands}_{width}x{height}.tif", width, height, bands, "uint16")
        model = models["4band"] if bands == 4 else "default"
        add(
            "multispectral",
            f"geoseg ({bands} bands)",
            f"{bands}-band uint16 {width}×{height}",
            width * height,
            run_job("geoseg", scene, model, WORK / f"geoseg_ms{bands}_{width}x{height}.tif"),
        )

    # real scenes
    brandenburg = SHARED / "brandenburg_s2_osm" / "s2_l1c_10m_stack.tif"
    if not brandenburg.exists():
        brandenburg = ROOT / "data_samples" / "brandenburg_s2.tif"
    import rasterio

    with rasterio.open(brandenburg) as ds:
        pixels = ds.width * ds.height
    records = best_of(
        2, ("geoseg", brandenburg, "default", WORK / "geoseg_brandenburg.tif"), ("model_only", brandenburg, "default")
    )
    ours = add("real", "geoseg", "Brandenburg S2, 10 bands, default model", pixels, records[0])
    only = add("real", "model only", "Brandenburg S2, 10 bands, default model", pixels, records[1])
    ours["predict_over_model"] = round(ours["predict_s"] / only["wall_s"], 3)
    # the same 3-band model in both tools on a real scene: the Brandenburg RGB bands, forest against open land
    rgb_scene = WORK / "brandenburg_rgb.tif"
    with rasterio.open(rgb_scene) as ds:
        pixels = ds.width * ds.height
    name = "Brandenburg RGB, forest model (128 px chips)"
    records = best_of(
        2,
        ("geoseg", rgb_scene, models["forest"], WORK / "geoseg_forest.tif"),
        ("geodeep", rgb_scene, models["forest"], WORK / "geodeep_forest.tif"),
    )
    ours = add("real", "geoseg", name, pixels, records[0])
    deep = add("real", "GeoDeep", name, pixels, records[1])
    ours["geodeep_over_geoseg"] = round(deep["wall_s"] / ours["wall_s"], 3)
    ours["agreement_with_geodeep"] = round(agreement(WORK / "geoseg_forest.tif", WORK / "geodeep_forest.tif"), 4)
    for size in peer_sizes:
        ours = next(r for r in rows if r["group"] == "rgb" and r["tool"] == "geoseg" and r["scene"].endswith(f"{size}²"))
        ours["agreement_with_geodeep"] = round(agreement(WORK / f"geoseg_rgb_{size}.tif", WORK / f"geodeep_rgb_{size}.tif"), 4)

    # vectorize against gdal_polygonize
    sys.path.insert(0, str(HERE))
    from bench_vectorize import make_classes
    from bench_vectorize import measure as run_command  # an external command's wall time and peak RSS

    gdal = shutil.which("gdal_polygonize.py")
    for size in ([2048] if args.quick else [2048, 4096, 8192]) + geoseg_only:
        classes = make_classes(HERE / "output" / f"classes_{size}.tif", size)
        name = f"class map {size}²"
        geoseg_cli = str(Path(sys.executable).with_name("geoseg"))
        ours = add(
            "vectorize",
            "geoseg vectorize",
            name,
            size * size,
            run_command(
                [
                    geoseg_cli,
                    "vectorize",
                    str(classes),
                    "-o",
                    str(WORK / "geoseg_polygons.gpkg"),
                    "--overwrite",
                    "--progress",
                    "none",
                ]
            ),
        )
        if gdal and size <= 8192:
            target = WORK / "gdal_polygons.gpkg"
            target.unlink(missing_ok=True)
            theirs = add(
                "vectorize",
                "gdal_polygonize.py",
                name,
                size * size,
                run_command([gdal, "-q", str(classes), "-f", "GPKG", str(target), "polygons", "class"]),
            )
            ours["gdal_over_geoseg"] = round(theirs["wall_s"] / ours["wall_s"], 3)

    pipeline = pipeline_figures(args.quick)
    report(rows, time.perf_counter() - started, args.quick, pipeline)


def pipeline_figures(quick: bool) -> dict:
    """The I/O floor, INT8 against float and the start-up of small jobs, each by its own script (figures as JSON)."""
    runs = {
        "floor": ["bench_floor.py", *(["--sizes", "2048"] if quick else [])],
        "int8": ["bench_quantize.py", "--rounds", "3" if quick else "7"],
        "startup": ["bench_startup.py", "--rounds", "3" if quick else "5"],
    }
    figures = {}
    for name, (script, *options) in runs.items():
        target = WORK / f"{name}.json"
        target.unlink(missing_ok=True)  # never the figures of an earlier run
        print(f"\n{script} {' '.join(options)}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *options, "--json", str(target)], check=True)
        figures[name] = json.loads(target.read_text())
    return figures


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else ""."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")


def report(rows: list[dict], seconds: float, quick: bool, pipeline: dict) -> None:
    machine = {
        "machine": platform.machine(),
        "processor": platform.processor() or cpu_model(),
        "python": platform.python_version(),
        "cpus": __import__("os").cpu_count(),
        "suite_seconds": round(seconds, 1),
        "quick": quick,
    }
    print(f"\n{machine}\n")
    header = f"{'group':<13} {'tool':<24} {'scene':<44} {'time s':>8} {'peak MB':>8}  ratios"
    print(header)
    print("-" * len(header))
    keys = ("predict_over_model", "geodeep_over_geoseg", "agreement_with_geodeep", "gdal_over_geoseg")
    for r in rows:
        ratios = ", ".join(f"{k}={r[k]}" for k in keys if k in r)
        print(f"{r['group']:<13} {r['tool']:<24} {r['scene']:<44} {r['wall_s']:8.2f} {r['peak_rss_mb']:8.0f}  {ratios}")
    print("\nI/O floor (zero-cost model): non-model time ÷ floor, target ≤ 1.5")
    for r in pipeline["floor"]["rows"]:
        floor, non_model = r["floor"]["total_s"], r["non_model_s"]
        print(f"  {r['size']}², {r['bands']} bands: floor {floor:.2f} s, non-model {non_model:.2f} s, {r['ratio']:.2f}")
    int8 = pipeline["int8"]
    print("\nINT8 against float32:", ", ".join(f"{k} {v:.2%}" for k, v in int8["agreement"].items()))
    for label, times in int8["model_alone_s"].items():
        print(f"  model alone, {label}: {times['float32'] / times['int8 static']:.2f}x")
    print("\nstart-up:", ", ".join(f"{k} {v['fastest_s']:.2f} s" for k, v in pipeline["startup"].items()))
    results = {"machine": machine, "rows": rows, "pipeline": pipeline}
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    plot(rows)


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(exist_ok=True)
    for group, title in (("rgb", "Predict, RGB uint8 scenes, Unet-resnet18 ONNX"), ("vectorize", "Vectorize a class map")):
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        tools = dict.fromkeys(r["tool"] for r in rows if r["group"] == group)
        for tool in tools:
            points = sorted(
                (r["megapixels"], r["wall_s"], r["peak_rss_mb"]) for r in rows if r["group"] == group and r["tool"] == tool
            )
            mp = [p[0] for p in points]
            axes[0].plot(mp, [p[1] for p in points], marker="o", label=tool)
            axes[1].plot(mp, [p[2] for p in points], marker="o", label=tool)
        for ax, label in zip(axes, ("time (s)", "peak RSS (MB)")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("scene size (megapixels)")
            ax.set_ylabel(label)
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(PLOTS / f"{group}.png", dpi=90)
        plt.close(fig)


if __name__ == "__main__":
    main()
