"""GPU throughput: geoseg predict end to end against the model alone, Unet-resnet18, 256-px chips, 25% overlap.

Prints, for a generated uint16 scene, the megapixels per second of

- **model only**: the forward pass (and softmax) on exactly the chips predict
  runs, already on the device, batch after batch, synchronized;
- **end to end**: ``geoseg.predict`` from the file on disk to the written,
  compressed class map (model loading excluded);

and their ratio (the target of issue 18: end to end ≥ 60% of model only).
Without a GPU it says so and exits 0 (the CPU proxy is bench_floor.py);
``--device cpu`` runs it on the CPU anyway (small sizes only).

    .venv/bin/python benchmarks/gpu.py                       # 8192², 4 bands, fp16, batch from free memory
    .venv/bin/python benchmarks/gpu.py --precision bf16 --compile
    .venv/bin/python benchmarks/gpu.py --backend tensorrt     # onnxruntime with TensorRT (an engine is built first)
    .venv/bin/python benchmarks/gpu.py --device cpu --size 1024 --precision fp32   # a dry run on the CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_floor import make_scene  # noqa: E402 - the same generated scenes as the I/O floor

CHIP, OVERLAP, CLASSES = 256, 64, 8


def unet(bands: int):  # noqa: ANN201 - a geoseg Model
    """Unet-resnet18 with seeded random weights (no download): the speed is the architecture's."""
    import torch

    import geoseg

    torch.manual_seed(0)
    return geoseg.create_model(
        "unet",
        "resnet18",
        bands=bands,
        classes=CLASSES,
        chip_size=CHIP,
        overlap=f"{OVERLAP}px",
        mean=[1500.0] * bands,
        std=[500.0] * bands,
    )


def model_only(model, chips: int, bands: int, args: argparse.Namespace) -> tuple[float, int]:  # noqa: ANN001
    """Seconds for the forward pass and softmax of ``chips`` chips already on the device; the batch size used."""
    import torch

    from geoseg.core.threads import run_ahead
    from geoseg.inference.backends import TorchRunner, Tuning, make_runner

    if args.backend != "torch":  # onnxruntime (CUDA or TensorRT): numpy batches in, probabilities back on the host
        runner, _ = make_runner(model, args.backend, args.device, False, CHIP, chips, {}, Tuning(args.precision))
        batch = args.batch or 32
        data = np.random.default_rng(0).normal(size=(batch, bands, CHIP, CHIP)).astype(np.float32)
        for _ in range(3):  # warm-up (and the engine)
            runner(data)
        started = time.perf_counter()
        parts = [data[: min(batch, chips - done)] for done in range(0, chips, batch)]
        for _ in run_ahead(parts, runner, getattr(runner, "lanes", 1)):  # as predict runs them (2 at once on the CPU)
            pass
        return time.perf_counter() - started, batch
    runner = TorchRunner(model, device=args.device, tuning=Tuning(args.precision, args.compile))
    batch = args.batch or runner.batch_for(bands, CHIP)
    x = torch.randn(batch, bands, CHIP, CHIP, device=runner.device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        for _ in range(3):  # warm-up (and compilation)
            torch.softmax(runner._forward(x).float(), dim=1)
        _sync(runner.device)
        started = time.perf_counter()
        done = 0
        while done < chips:
            torch.softmax(runner._forward(x[: min(batch, chips - done)]).float(), dim=1)
            done += batch
        _sync(runner.device)
    return time.perf_counter() - started, batch


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def end_to_end(model, scene: Path, batch: int, args: argparse.Namespace) -> dict:  # noqa: ANN001
    """geoseg.predict's wall time and stage times (a first, small run warms the device up)."""
    import geoseg

    out = HERE / "output" / f"gpu_classes_{scene.stem}.tif"
    opts = {"device": args.device, "batch_size": batch, "backend": args.backend, "model_precision": args.precision}
    geoseg.predict(scene, model, out, overwrite=True, columns=(0, 512), compile=args.compile, **opts)
    started = time.perf_counter()
    result = geoseg.predict(scene, model, out, overwrite=True, compile=args.compile, **opts)
    return {"total_s": time.perf_counter() - started, **{k: round(v, 3) for k, v in result.seconds.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--bands", type=int, default=4)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx", "tensorrt"], help="the inference engine")
    parser.add_argument("--batch", type=int, default=None, help="chips per call (default: from free GPU memory)")
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to measure (the CPU proxy is benchmarks/bench_floor.py)")
        return
    from geoseg.core.grid import make_grid

    (HERE / "output").mkdir(exist_ok=True)
    scene = make_scene(HERE / "output" / f"floor_{args.size}_{args.bands}b.tif", args.size, args.bands)
    chips = len(make_grid(args.size, args.size, CHIP, f"{OVERLAP}px", edges="mirror"))
    model = unet(args.bands)
    alone, batch = model_only(model, chips, args.bands, args)
    e2e = end_to_end(model, scene, batch, args)
    mpx = args.size**2 / 1e6
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    row = {
        "device": name, "size": args.size, "bands": args.bands, "chips": chips, "batch": batch, "precision": args.precision,
        "compile": args.compile, "model_only_s": round(alone, 3), "model_only_mpx_s": round(mpx / alone, 1),
        "end_to_end_s": round(e2e["total_s"], 3), "end_to_end_mpx_s": round(mpx / e2e["total_s"], 1),
        "ratio": round(alone / e2e["total_s"], 3), "stages_s": e2e,
    }  # fmt: skip
    print(json.dumps(row))
    print(
        f"\n{name}: {args.size}² × {args.bands} bands, {chips} chips, batch {batch}, {args.precision}"
        f"{', compiled' if args.compile else ''}\n"
        f"model only  {row['model_only_mpx_s']:8.1f} Mpx/s ({alone:.2f} s)\n"
        f"end to end  {row['end_to_end_mpx_s']:8.1f} Mpx/s ({e2e['total_s']:.2f} s)\n"
        f"end to end ÷ model only: {row['ratio']:.0%} (target ≥ 60%)"
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
