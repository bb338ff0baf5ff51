"""geoseg predict with a real model at an earlier revision and now, alternating in fresh processes.

The earlier revision is checked out once as a git worktree under
benchmarks/output (as ``bench_floor.py --compare`` does); each round runs
predict with that checkout's geoseg and with this one, each in its own
process, and the best of the rounds counts (the machine is shared). The model
defaults to a Unet-resnet18 like the suite's (random weights, 3 bands, 6
classes, the card's defaults otherwise), exported to ONNX (run by
onnxruntime); the scene to the I/O-floor benchmark's generated 4096² 3-band
scene.

    .venv/bin/python benchmarks/bench_compare.py --rev 63ed25b
    .venv/bin/python benchmarks/bench_compare.py --rev 63ed25b --scene my.tif --model my.onnx --rounds 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_floor  # noqa: E402 - the benchmarks folder is not a package

CODE = """
import json, sys, time
{other}
import geoseg
from pathlib import Path
t = time.perf_counter()
r = geoseg.predict(Path({scene!r}), Path({model!r}), Path({out!r}), overwrite=True)
print(json.dumps({{"predict_s": round(time.perf_counter() - t, 3), "model_s": round(r.seconds.get("model", 0.0), 3)}}))
"""


def default_model(path: Path) -> Path:
    """A Unet-resnet18 like the suite's: random weights, 3 bands, 6 classes, as ONNX (made once)."""
    if not path.exists():
        from geoseg.model.factory import create_model
        from geoseg.model.onnx import export_onnx

        net = create_model(bands=["B02", "B03", "B04"], classes=[f"class_{i}" for i in range(6)], encoder="resnet18")
        export_onnx(net, path)
    return path


def run(source: Path | None, scene: Path, model: Path) -> dict:
    """One predict in a fresh process, with the geoseg of ``source`` (a checkout) or this one."""
    other = bench_floor.import_from(source) if source else ""
    code = CODE.format(other=other, scene=str(scene), model=str(model), out=str(HERE / "output" / "compare_classes.tif"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", required=True, help="the earlier git revision")
    parser.add_argument("--scene", type=Path, default=None, help="default: a generated 4096² 3-band uint16 scene")
    parser.add_argument("--model", type=Path, default=None, help="default: a Unet-resnet18 like the suite's, as ONNX")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    (HERE / "output").mkdir(exist_ok=True)
    scene = args.scene or bench_floor.make_scene(HERE / "output" / "floor_4096_3b.tif", 4096, 3)
    model = args.model or default_model(HERE / "output" / "compare_unet_resnet18.onnx")
    source = bench_floor.checkout(args.rev)
    times: dict[str, list[float]] = {args.rev: [], "this": []}
    for i in range(args.rounds):
        for key, src in ((args.rev, source), ("this", None)):
            times[key].append(run(src, scene, model)["predict_s"])
        print(f"round {i + 1}: {args.rev} {times[args.rev][-1]:.2f} s, this {times['this'][-1]:.2f} s", flush=True)
    then, now = min(times[args.rev]), min(times["this"])
    print(f"\n{scene.name}, {model.name}: best of {args.rounds}: {args.rev} {then:.2f} s, this {now:.2f} s, {then / now:.2f}x")


if __name__ == "__main__":
    main()
