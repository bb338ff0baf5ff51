"""Where predict's time beyond the model alone goes: before the first model call, beside the model, after it.

Each round runs, in fresh processes and alternating, geoseg's predict and the
model alone on exactly the chips predict runs (``suite.job_model_only``: as
many calls at once as predict makes). predict is split at its first model
call and at the end of its last one:

* **head**: opening the scene, laying the grid, the first batch read;
* **beside the model**: the span from the first call's start to the last
  call's end, less the model alone; the CPU that reading, stitching and
  writing threads take from the model on a machine whose cores it fills;
* **tail**: stitching and writing the last rows, then the commit (the
  rewrite of each output as a cloud-optimized GeoTIFF with overviews).

It also prints the CPU seconds of predict's threads by kind (read from
``/proc`` on Linux). The scene and model default to the suite's 2048² RGB
scene and Unet-resnet18 ONNX model (121 chips) when ``suite.py`` has made
them, else to a generated 2048² 3-band scene and a like model.

    .venv/bin/python benchmarks/bench_overhead.py
    .venv/bin/python benchmarks/bench_overhead.py --scene my.tif --model my.onnx --rounds 3
    .venv/bin/python benchmarks/bench_overhead.py --rounds 1 --levels             # + the COG rewrite at levels 6, 3, 1
    .venv/bin/python benchmarks/bench_overhead.py --rounds 1 --levels smooth.tif  # ... of another class map
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_compare  # noqa: E402 - the benchmarks folder is not a package
import bench_floor  # noqa: E402

CHILD = """
import json, os, re, sys, threading, time
sys.path.insert(0, {here!r})
import onnxruntime  # imported before the clock, as in the suite
import geoseg
from geoseg.inference import loop
from geoseg.inference.predict import open_model
from geoseg.io import classmap

marks, cpu, names, stop, ready = {{}}, {{}}, {{}}, threading.Event(), threading.Event()
run_model, commit = loop.ChipLoop._run_model, classmap.ClassMapWriter.commit

def timed_model(self, batch):
    marks.setdefault("first", time.perf_counter())
    try:
        return run_model(self, batch)
    finally:
        marks["last"] = time.perf_counter()

def timed_commit(self):
    t = time.perf_counter()
    try:
        return commit(self)
    finally:
        marks["commit"] = marks.get("commit", 0.0) + time.perf_counter() - t

def sample():  # each thread's CPU seconds, by its Python name (a thread's last sample counts)
    tick = os.sysconf("SC_CLK_TCK")
    while True:
        names.update({{str(t.native_id): t.name for t in threading.enumerate()}})
        for tid in os.listdir("/proc/self/task"):
            try:
                fields = open(f"/proc/self/task/{{tid}}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            cpu[tid] = (int(fields[11]) + int(fields[12])) / tick
        ready.set()
        if stop.wait(0.1):
            return

loop.ChipLoop._run_model, classmap.ClassMapWriter.commit = timed_model, timed_commit
net = open_model({model!r})
sampler = threading.Thread(target=sample, name="sampler")
if os.path.isdir("/proc/self/task"):
    sampler.start()
    ready.wait()
before = dict(cpu)  # the threads' CPU before predict (the main thread's imports and model loading)
usage0 = sum(os.times()[:2])
t0 = time.perf_counter()
result = geoseg.predict({scene!r}, net, {out!r}, overwrite=True)
t1 = time.perf_counter()
used = sum(os.times()[:2]) - usage0  # every thread's, those ended too
stop.set()
sampler.join() if sampler.is_alive() else None
kinds = {{}}
for tid, seconds in cpu.items():
    kind = re.sub(r"(_\\d+|\\d+(_\\d+)?)$", "", names.get(tid, "native"))
    kinds[kind] = kinds.get(kind, 0.0) + seconds - before.get(tid, 0.0)
sampler_s, _ = kinds.pop("sampler", 0.0), kinds.pop("native", 0.0)
other = "threads not started by Python (GDAL's; onnxruntime's own pool beyond one lane thread), ended threads' last 0.1 s"
if cpu:
    kinds[other] = max(0.0, used - sampler_s - sum(kinds.values()))
if "first" not in marks:
    sys.exit("no chip ran: give a scene with valid pixels")
print(json.dumps({{"predict_s": t1 - t0, "head_s": marks["first"] - t0, "span_s": marks["last"] - marks["first"],
    "tail_s": t1 - marks["last"], "commit_s": marks.get("commit", 0.0), "chips": result.chips_predicted,
    "cpu": {{k: round(v, 2) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])}}}}))
"""

ALONE = """
import json, sys
sys.path.insert(0, {here!r})
import onnxruntime
import suite
print(json.dumps(suite.job_model_only({scene!r}, {model!r})))
"""


def child(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def levels(path: Path, rounds: int = 3) -> None:
    """The commit's COG rewrite of a class map at DEFLATE levels 6 (GDAL's default, what geoseg writes), 3 and 1."""
    import time

    import rasterio
    from rasterio.shutil import copy

    with rasterio.open(path) as ds:
        profile, data = ds.profile, ds.read()
    source = HERE / "output" / "overhead_stream.tif"  # as streamed: tiled, DEFLATE level 1
    profile.update(driver="GTiff", tiled=True, blockxsize=256, blockysize=256, compress="deflate", zlevel=1)
    with rasterio.open(source, "w", **profile) as dst:
        dst.write(data)
    target = HERE / "output" / "overhead_cog.tif"
    print(f"\nthe COG rewrite of {path.name} ({data.shape[2]} x {data.shape[1]}), best of {rounds}:")
    for level in (6, 3, 1):
        best = float("inf")
        for _ in range(rounds):
            t = time.perf_counter()
            copy(source, target, driver="COG", compress="DEFLATE", blocksize=256, overview_resampling="nearest",
                 predictor="NO", num_threads="ALL_CPUS", level=level)  # fmt: skip
            best = min(best, time.perf_counter() - t)
        print(f"  level {level}: {best:.2f} s, {target.stat().st_size / 1e6:.2f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", type=Path, default=None, help="default: the suite's 2048² RGB scene, or a generated one")
    parser.add_argument("--model", type=Path, default=None, help="default: the suite's Unet-resnet18 ONNX model, or a like one")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the fastest predict and model alone count")
    what = "also time the COG rewrite of a class map (default: predict's) at DEFLATE levels 6, 3, 1"
    parser.add_argument("--levels", type=Path, nargs="?", const=True, default=None, metavar="MAP", help=what)
    args = parser.parse_args()
    out = HERE / "output"
    out.mkdir(exist_ok=True)
    suite_scene, suite_model = out / "suite" / "rgb_2048.tif", out / "suite" / "unet_r18_rgb.onnx"
    scene = args.scene or (suite_scene if suite_scene.exists() else bench_floor.make_scene(out / "floor_2048_3b.tif", 2048, 3))
    default = suite_model if suite_model.exists() else bench_compare.default_model(out / "compare_unet_resnet18.onnx")
    model = args.model or default
    fields = {"here": str(HERE), "scene": str(scene), "model": str(model), "out": str(out / "overhead_classes.tif")}
    runs, alone = [], []
    for i in range(args.rounds):
        runs.append(child(CHILD.format(**fields)))
        alone.append(child(ALONE.format(**fields))["wall_s"])
        print(f"round {i + 1}: predict {runs[-1]['predict_s']:.2f} s, model alone {alone[-1]:.2f} s", flush=True)
    best, model_s = min(runs, key=lambda r: r["predict_s"]), min(alone)
    ratios = sorted(r["predict_s"] / a for r, a in zip(runs, alone))  # each round's pair: the machine's load shared
    beside = sorted((r["span_s"] - a) / a for r, a in zip(runs, alone))
    print(f"\n{scene.name}, {model.name}, {best['chips']} chips, {args.rounds} rounds:")
    print(f"  predict / model alone, each round's pair: {', '.join(f'{x:.3f}' for x in ratios)}")
    print(f"  fastest predict {best['predict_s']:.2f} s, fastest model alone {model_s:.2f} s: {best['predict_s'] / model_s:.3f}")
    print(f"  beside the model, each round's pair: {', '.join(f'{x:.1%}' for x in beside)} of the model alone")
    for name, seconds in (("head", best["head_s"]), ("tail", best["tail_s"])):
        print(f"  {name} {seconds:.2f} s ({seconds / model_s:.1%} of the fastest model alone) in the fastest predict")
    print(f"  of the tail, the commit (COG rewrite): {best['commit_s']:.2f} s")
    if best["cpu"]:
        print("  CPU seconds by thread in that predict: " + ", ".join(f"{k} {v}" for k, v in best["cpu"].items()))
    else:
        print("  CPU seconds by thread: not available (no /proc on this system)")
    if args.levels:
        levels(Path(fields["out"]) if args.levels is True else args.levels)


if __name__ == "__main__":
    main()
