"""torch against onnxruntime: the same model and scene through ``geoseg.predict``, in one run.

Unet-resnet18 (4 bands, 3 classes, 256 px chips, 32 px overlap, batch 8) on a
generated 2048 x 2048 uint16 scene; each backend runs twice in alternation
(ABAB) and the faster of its runs counts. The ONNX figure includes exporting
the checkpoint in memory (``--backend onnx`` on a .pt file) and, separately,
running a pre-exported ``.onnx`` file. Class maps are compared pixel by pixel.

    .venv/bin/python benchmarks/bench_backends.py [SIZE]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch

import geoseg
from geoseg.model.onnx import export_onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import make_scene  # noqa: E402


def timed(label: str, fn) -> float:
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    print(f"  {label}: {seconds:.2f} s", flush=True)
    return seconds


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scene = make_scene(tmp / "scene.tif", size, size)
        model = geoseg.create_model(
            "unet",
            "resnet18",
            bands=["B02", "B03", "B04", "B08"],
            classes=3,
            chip_size=256,
            overlap="32px",
            mean=[1000] * 4,
            std=[500] * 4,
        )
        ckpt = model.save(tmp / "model.pt")
        onnx_file = export_onnx(ckpt, tmp / "model.onnx")
        runs: dict[str, list[float]] = {"torch": [], "onnx (export included)": [], "onnx file": []}
        for i in range(2):
            runs["torch"].append(
                timed(
                    f"torch #{i + 1}",
                    lambda: geoseg.predict(scene, ckpt, tmp / "torch.tif", backend="torch", overwrite=True, batch_size=8),
                )
            )
            runs["onnx (export included)"].append(
                timed(
                    f"onnx, export included #{i + 1}",
                    lambda: geoseg.predict(scene, ckpt, tmp / "onnx.tif", backend="onnx", overwrite=True, batch_size=8),
                )
            )
            runs["onnx file"].append(
                timed(
                    f"onnx file #{i + 1}",
                    lambda: geoseg.predict(scene, onnx_file, tmp / "file.tif", overwrite=True, batch_size=8),
                )
            )
        model_only = model_only_ratio(model, onnx_file)
        with rasterio.open(tmp / "torch.tif") as a, rasterio.open(tmp / "onnx.tif") as b:
            agreement = float((a.read(1) == b.read(1)).mean())
        chips = len(geoseg.make_grid(size, size, 256, "32px"))
    best = {k: min(v) for k, v in runs.items()}
    print(f"\nscene {size}x{size}, {chips} chips, torch threads {torch.get_num_threads()}")
    print("| backend | best of 2 (s) | chips/s | speed-up over torch |")
    print("|---|---:|---:|---:|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.2f} | {chips / seconds:.1f} | {best['torch'] / seconds:.2f}x |")
    print(f"class maps torch vs onnxruntime: {agreement:.5%} of pixels equal")
    print(
        f"model only (10 batches of 8x4x256x256, no I/O): torch {model_only[0]:.2f} s, onnxruntime "
        f"{model_only[1]:.2f} s, speed-up {model_only[0] / model_only[1]:.2f}x"
    )


def model_only_ratio(model, onnx_file: Path) -> tuple[float, float]:
    """The runners alone on the same random batches (best of two passes each), each as predict runs it (onnxruntime:
    ``runner.lanes`` calls at once on the CPU)."""
    from geoseg.core.threads import run_ahead
    from geoseg.inference.backends import OnnxRunner, TorchRunner
    from geoseg.model.onnx import load_onnx

    batches = [np.random.default_rng(i).normal(0, 1, (8, 4, 256, 256)).astype(np.float32) for i in range(10)]
    torch_runner, onnx_runner = TorchRunner(model, device="cpu"), OnnxRunner(load_onnx(onnx_file))
    best = []
    for runner in (torch_runner, onnx_runner):
        runner(batches[0])  # warm up
        times = []
        for _ in range(2):
            start = time.perf_counter()
            for _ in run_ahead(batches, runner, getattr(runner, "lanes", 1)):
                pass
            times.append(time.perf_counter() - start)
        best.append(min(times))
    return best[0], best[1]


if __name__ == "__main__":
    main()
