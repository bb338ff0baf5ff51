"""INT8 against float: the bundled model as fp32 and int8 ONNX files through ``geoseg.predict``, in one run.

Exports the ``default`` model (Unet-mobilenet_v2, 10 Sentinel-2 bands, 8
classes, 256 px chips, 25% overlap) with ``geoseg export`` as float32, as
int8 calibrated statically on the bundled 512 px sample, as int8 calibrated
on the sample's top half only, and as dynamic int8 (no calibration). Then:

* **agreement**: pixels of the int8 class map equal to the float one's, on
  the sample (the calibration scene), on the sample's bottom half (held
  back: the model calibrated on the top half predicts it) and on the whole
  1536 x 768 Brandenburg scene the sample was cut from;
* **speed**: ``geoseg.predict`` (onnxruntime backend, default threads and
  batch) on the Brandenburg scene (32 chips) and on the sample (9 chips),
  float and int8 back to back in each of ``--rounds`` rounds (alternating
  which goes first): the best time of each and the median of the rounds'
  ratios (the machine is shared: ratios from one run count, absolute times
  vary); dynamic int8 once; and the model alone on the Brandenburg scene's
  chips (per batch, the fastest of the rounds), with onnxruntime's default
  threads and with one.

``--variants`` instead compares what stays float and the calibration views
(:data:`VARIANTS`, set through :mod:`geoseg.model.quantize`'s constants):
each calibrated on the sample's top half, its agreement on the bottom half
and its model-alone speed-up on the Brandenburg chips.

    .venv/bin/python benchmarks/bench_quantize.py [--rounds 7] [--variants]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

import geoseg
from geoseg.model import quantize
from geoseg.model.onnx import export_onnx, load_onnx

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_samples" / "brandenburg_s2_512.tif"
SCENE = ROOT / "data_samples" / "brandenburg_s2.tif"
VARIANTS = {  # label: (FLOAT_ENCODER_SCALE, FLOAT_DECODER_SCALE, CALIBRATION_VIEWS); scale 0: no fine layer float
    "first and last conv float, chips as read (before)": (0, 0, 1),
    "first and last conv float, 5 views": (0, 0, 5),
    "+ decoder at >= 1/4 resolution, 5 views": (0, 4, 5),
    "+ encoder at >= 1/2, decoder at >= 1/2, 5 views": (2, 2, 5),
    "+ encoder at >= 1/2, decoder at >= 1/4, chips as read": (2, 4, 1),
    "+ encoder at >= 1/2, decoder at >= 1/4, 5 views (default)": (2, 4, 5),
    "+ encoder and decoder at >= 1/4, 5 views": (4, 4, 5),
}


def write_half(src: Path, dst: Path, top: bool) -> Path:
    """The top or bottom half of ``src`` as its own GeoTIFF (band descriptions kept)."""
    with rasterio.open(src) as ds:
        half = ds.height // 2
        window = Window(0, 0 if top else half, ds.width, half)
        profile = {**ds.profile, "height": half, "transform": ds.window_transform(window)}
        with rasterio.open(dst, "w", **profile) as out:
            out.write(ds.read(window=window))
            out.descriptions = ds.descriptions
    return dst


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def class_map(scene: Path, model: Path, out: Path) -> np.ndarray:
    geoseg.predict(scene, model, out, backend="onnx", overwrite=True)
    with rasterio.open(out) as ds:
        return ds.read(1)


def agreement(scene: Path, reference: Path, model: Path, tmp: Path) -> float:
    return float((class_map(scene, reference, tmp / "a.tif") == class_map(scene, model, tmp / "b.tif")).mean())


def predict_times(models: dict[str, Path], scene: Path, rounds: int, tmp: Path) -> tuple[dict[str, float], float]:
    """Best of ``rounds`` predict times per model, and the median speed-up of the second over the first within a round.

    The two run back to back in each round, in alternating order, so a round's ratio sees the same machine load.
    """
    names = list(models)
    best = {name: float("inf") for name in names}
    ratios = []
    for i in range(rounds):
        seconds = {}
        for name in names if i % 2 == 0 else names[::-1]:
            seconds[name] = timed(geoseg.predict, scene, models[name], tmp / "t.tif", backend="onnx", overwrite=True)
            best[name] = min(best[name], seconds[name])
        ratios.append(seconds[names[0]] / seconds[names[1]])
    return best, float(np.median(ratios))


def graph_chips(model: Path, scene: Path) -> np.ndarray:
    """The scene's chips as the graph takes them (read and normalized as predict does)."""
    from geoseg.model.quantize import calibration_chips

    net = load_onnx(model)
    return net.to_graph_input(calibration_chips(scene, net.card, net.chip_size, count=10**6))


def model_only(models: dict[str, Path], chips: np.ndarray, rounds: int, threads: int) -> dict[str, float]:
    """Seconds for all chips in batches of 2 (geoseg's CPU default): per batch the fastest of ``rounds``, summed."""
    import onnxruntime as ort

    sessions = {}
    for name, path in models.items():
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        sessions[name] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    batches = [chips[i : i + 2] for i in range(0, len(chips), 2)]
    best = {name: np.full(len(batches), np.inf) for name in models}
    for session in sessions.values():
        session.run(None, {"input": batches[0]})  # warm up
    for _ in range(rounds):
        for b, batch in enumerate(batches):
            for name, session in sessions.items():
                best[name][b] = min(best[name][b], timed(session.run, None, {"input": batch}))
    return {name: float(times.sum()) for name, times in best.items()}


def variants(rounds: int, tmp: Path) -> None:
    """The :data:`VARIANTS` table: held-back agreement, model-alone speed-up (default threads, one), file size."""
    top, bottom = write_half(SAMPLE, tmp / "top.tif", True), write_half(SAMPLE, tmp / "bottom.tif", False)
    files = {"float32": export_onnx("default", tmp / "float32.onnx")}
    defaults = (quantize.FLOAT_ENCODER_SCALE, quantize.FLOAT_DECODER_SCALE, quantize.CALIBRATION_VIEWS)
    try:
        for i, (label, (encoder, decoder, views)) in enumerate(VARIANTS.items()):
            quantize.FLOAT_ENCODER_SCALE, quantize.FLOAT_DECODER_SCALE, quantize.CALIBRATION_VIEWS = encoder, decoder, views
            files[label] = export_onnx("default", tmp / f"v{i}.onnx", quantize="int8", calibration=top)
    finally:
        quantize.FLOAT_ENCODER_SCALE, quantize.FLOAT_DECODER_SCALE, quantize.CALIBRATION_VIEWS = defaults
    chips = graph_chips(files["float32"], SCENE)
    alone = {threads: model_only(files, chips, rounds, threads) for threads in (0, 1)}
    print(f"\n{os.cpu_count()} CPU cores, {rounds} rounds; calibrated on the sample's top half")
    print("| variant | float convs | held-back agreement | speed-up, default threads | 1 thread | MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, path in list(files.items())[1:]:
        record = load_onnx(path).card.quantization
        speed = [alone[t]["float32"] / alone[t][label] for t in (0, 1)]
        print(
            f"| {label} | {record['float_convs']} of {record['convs']} | "
            f"{agreement(bottom, files['float32'], path, tmp):.2%} | {speed[0]:.2f}x | {speed[1]:.2f}x | "
            f"{path.stat().st_size / 1e6:.1f} |"
        )


def row(label: str, reference: float, seconds: float, median: float | None = None) -> None:
    print(
        f"| {label} | {reference:.2f} | {seconds:.2f} | {reference / seconds:.2f}x |"
        + ("" if median is None else f" {median:.2f}x |")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds of each timing (best counts)")
    parser.add_argument("--variants", action="store_true", help="compare what stays float and the calibration views")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE (benchmarks/suite.py)")
    args = parser.parse_args()
    if args.json and args.variants:
        parser.error("--json writes the figures of the default measurement: leave out --variants")
    if args.variants:
        with tempfile.TemporaryDirectory(prefix="geoseg-bench-quantize-") as name:
            variants(args.rounds, Path(name))
        print(
            "\nreproduce: .venv/bin/python benchmarks/bench_quantize.py --variants"
            + (f" --rounds {args.rounds}" if args.rounds != 7 else "")
        )
        return
    with tempfile.TemporaryDirectory(prefix="geoseg-bench-quantize-") as name:
        tmp = Path(name)
        top, bottom = write_half(SAMPLE, tmp / "top.tif", True), write_half(SAMPLE, tmp / "bottom.tif", False)
        files, export_s = {}, {}
        for label, options in (
            ("float32", {}),
            ("int8 static", {"quantize": "int8", "calibration": SAMPLE}),
            ("int8 static, top half", {"quantize": "int8", "calibration": top}),
            ("int8 dynamic", {"quantize": "int8"}),
        ):
            path = tmp / f"{label.replace(' ', '_').replace(',', '')}.onnx"
            export_s[label] = timed(export_onnx, "default", path, overwrite=True, **options)
            files[label] = path
        agree = {
            "sample (calibration scene)": agreement(SAMPLE, files["float32"], files["int8 static"], tmp),
            "sample bottom half (held back)": agreement(bottom, files["float32"], files["int8 static, top half"], tmp),
            "Brandenburg 1536x768 (calibrated on the sample)": agreement(SCENE, files["float32"], files["int8 static"], tmp),
            "sample, dynamic int8": agreement(SAMPLE, files["float32"], files["int8 dynamic"], tmp),
        }
        pair = {"float32": files["float32"], "int8 static": files["int8 static"]}
        scene_s, scene_ratio = predict_times(pair, SCENE, args.rounds, tmp)
        sample_s, sample_ratio = predict_times(pair, SAMPLE, args.rounds, tmp)
        dynamic_s = timed(geoseg.predict, SCENE, files["int8 dynamic"], tmp / "t.tif", backend="onnx", overwrite=True)
        chips = graph_chips(files["float32"], SCENE)
        alone = {threads: model_only(pair, chips, args.rounds, threads) for threads in (0, 1)}
        sizes = {label: path.stat().st_size / 1e6 for label, path in files.items()}
        record = load_onnx(files["int8 static"]).card.quantization
    print(f"\ndefault model, {os.cpu_count()} CPU cores, {args.rounds} rounds; onnxruntime backend, batch 2")
    print("\n| file | export (s) | size (MB) |\n|---|---:|---:|")
    for label in files:
        print(f"| {label} | {export_s[label]:.1f} | {sizes[label]:.1f} |")
    print(f"\nint8 static: {record['float_convs']} of {record['convs']} convolutions float, {record['calibration_views']} views")
    print("\n| int8 class map vs float32 | pixels equal |\n|---|---:|")
    for label, value in agree.items():
        print(f"| {label} | {value:.2%} |")
    print("\n| geoseg predict | float32 (s) | int8 (s) | speed-up, best of each | median speed-up within a round |")
    print("|---|---:|---:|---:|---:|")
    row("Brandenburg 1536x768, 32 chips, int8 static", scene_s["float32"], scene_s["int8 static"], scene_ratio)
    row("sample 512x512, 9 chips, int8 static", sample_s["float32"], sample_s["int8 static"], sample_ratio)
    row("Brandenburg, int8 dynamic (one run)", scene_s["float32"], dynamic_s)
    print(f"\n| model alone, {len(chips)} chips | float32 (s) | int8 static (s) | speed-up |\n|---|---:|---:|---:|")
    for threads, times in alone.items():
        row("default threads" if threads == 0 else f"{threads} thread", times["float32"], times["int8 static"])
    print("\nreproduce: .venv/bin/python benchmarks/bench_quantize.py" + (f" --rounds {args.rounds}" if args.rounds != 7 else ""))
    if args.json:
        figures = {
            "rounds": args.rounds,
            "float_convs": record["float_convs"],
            "convs": record["convs"],
            "calibration_views": record["calibration_views"],
            "agreement": agree,
            "predict_s": {"Brandenburg 32 chips": scene_s, "sample 9 chips": sample_s, "Brandenburg dynamic int8": dynamic_s},
            "predict_median_speedup": {"Brandenburg 32 chips": scene_ratio, "sample 9 chips": sample_ratio},
            "model_alone_s": {"default threads" if t == 0 else f"{t} thread": times for t, times in alone.items()},
        }
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
