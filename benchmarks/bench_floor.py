"""The I/O floor: geoseg predict with a zero-cost model against a plain read of every chip window and write of the map.

What a fast GPU would leave of predict is everything but the model: reading
chips, blending and stitching, the argmax, writing the class map. This
script measures that part with a model that costs nothing (it returns fixed
probabilities laid out once, and the runner's softmax is skipped: on a GPU
that is part of the model's cost) and compares it, in the
same run, with the floor any tool must pay: a plain windowed read of every
chip window of the same grid, plus writing a tiled, compressed uint8 map of
the scene. Scenes are generated: 3 and 10 bands of uint16, 8 classes,
256-pixel chips with 25% overlap, batches of 8, the torch backend on one
thread (see TORCH_THREADS).

    .venv/bin/python benchmarks/bench_floor.py                 # 4096² and 8192², 3 and 10 bands
    .venv/bin/python benchmarks/bench_floor.py --sizes 2048    # quick
    .venv/bin/python benchmarks/bench_floor.py --compare ce282d7 --sizes 4096   # against an earlier geoseg

Each measurement runs in its own process (peak RSS is its own); the target
of issue 18 is geoseg's non-model time ÷ the floor ≤ 1.5.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "output"
CHIP, OVERLAP, BATCH, CLASSES = 256, 64, 8, 8
TORCH_THREADS = 1
"""torch's threads for the zero-cost runner. On a GPU the runner's copy of each batch to the device takes no CPU
threads; on the CPU, torch's default of a thread per core makes the runner's channels-last copy a parallel section
whose threads wait for the cores the pipeline's threads hold, which a GPU user never pays (BENCHMARKS.md has both).
``--torch-threads 2`` (torch's default on 2 cores) measures as the suite run of commit 08de91f did."""


def make_scene(path: Path, size: int, bands: int) -> Path:
    """A uint16 scene of 64-px fields with a little noise, written strip by strip."""
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    if path.exists():
        return path
    rng = np.random.default_rng(size + bands)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": bands,
        "dtype": "uint16",
        "crs": "EPSG:32633",
        "transform": Affine(10, 0, 300000, 0, -10, 5900000),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 2,
        "BIGTIFF": "YES",
    }
    tmp = path.with_suffix(".partial.tif")
    with rasterio.open(tmp, "w", **profile) as ds:
        for y in range(0, size, 1024):
            rows = min(1024, size - y)
            fields = rng.integers(500, 3000, (bands, rows // 64 + 1, size // 64 + 1)).astype(np.uint16)
            block = np.kron(fields, np.ones((1, 64, 64), np.uint16))[:, :rows, :size]
            block = block + rng.integers(0, 50, block.shape, dtype=np.uint16)
            ds.write(block, window=Window(0, y, size, rows))
    tmp.rename(path)
    return path


def zero_cost_model(bands: int):  # noqa: ANN201 - a geoseg Model, imported lazily
    """A geoseg model whose forward pass returns fixed probabilities, laid out once (no arithmetic worth counting)."""
    import torch

    from geoseg.core.classes import ClassInfo
    from geoseg.model.card import ModelCard
    from geoseg.model.factory import Model

    class Fixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            probs = torch.softmax(torch.linspace(0.0, 1.0, CLASSES), dim=0).reshape(1, CLASSES, 1, 1)
            # already probabilities (the runner's softmax is skipped), laid out once for a whole batch; a plain
            # attribute, not a buffer, so the runner's channels-last conversion leaves it contiguous
            self.probs = probs.expand(BATCH, CLASSES, CHIP, CHIP).contiguous()
            self.encoder = torch.nn.Module()
            self.encoder.output_stride = 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.probs[: x.shape[0]]

    names = [f"band_{i + 1}" for i in range(bands)]
    table = [ClassInfo(i, f"class_{i}", f"#{30 * i:02x}7080") for i in range(CLASSES)]
    card = ModelCard("unet", "custom", names, table, chip_size=CHIP, overlap=f"{OVERLAP}px")
    return Model(card, Fixed()).eval()


def skip_softmax() -> None:
    """Make the torch runner hand the model's output on as it is: the zero-cost model returns probabilities.

    On a GPU the softmax runs on the device with the model, so it is part of
    the model's cost; on this CPU it would add ~1 s of arithmetic per 4096²
    scene to what the pipeline is measured with.
    """
    from geoseg.inference import runners

    if hasattr(runners, "TorchRunner") and hasattr(runners.TorchRunner, "_softmax"):
        runners.TorchRunner._softmax = lambda self, logits: logits.float().contiguous()  # type: ignore[method-assign]


def geoseg_run(scene: Path, bands: int, threads: int = TORCH_THREADS) -> dict:
    """geoseg predict with the zero-cost model: total and the stage times it reports; torch on ``threads`` threads."""
    import torch

    import geoseg

    torch.set_num_threads(threads)
    skip_softmax()

    out = WORK / f"floor_classes_{scene.stem}.tif"
    model = zero_cost_model(bands)
    started = time.perf_counter()
    result = geoseg.predict(scene, model, out, backend="torch", device="cpu", batch_size=BATCH, overwrite=True)
    total = time.perf_counter() - started
    alone = model_alone(model, bands, result.chips_predicted)
    seconds = {f"{k}_s": round(v, 3) for k, v in result.seconds.items()}
    return {"total_s": round(total, 3), "model_alone_s": round(alone, 3), **seconds}


def model_alone(model, bands: int, chips: int) -> float:  # noqa: ANN001 - a geoseg Model
    """The runner alone on as many batches of chips as predict ran, already in memory: what the model costs.

    predict's own "model" time is the main thread's time in the runner, which
    on a busy CPU also counts waiting for the cores the other threads use.
    """
    from geoseg.inference.runners import TorchRunner

    runner = TorchRunner(model, device="cpu")
    batch = np.zeros((BATCH, bands, CHIP, CHIP), np.float32)
    runner(batch)
    started = time.perf_counter()
    for _ in range(-(-chips // BATCH)):
        runner(batch)
    return time.perf_counter() - started


def floor_run(scene: Path) -> dict:
    """The I/O floor: read every chip window of geoseg's grid, then write a tiled, compressed uint8 map."""
    import rasterio
    from rasterio.windows import Window

    from geoseg.core.grid import make_grid

    out = WORK / f"floor_plain_{scene.stem}.tif"
    started = time.perf_counter()
    with rasterio.open(scene) as ds:
        grid = make_grid(ds.width, ds.height, chip_size=CHIP, overlap=f"{OVERLAP}px")
        for chip in grid:
            ds.read(window=chip.window)
        read = time.perf_counter() - started
        profile = {
            "driver": "GTiff",
            "width": ds.width,
            "height": ds.height,
            "count": 1,
            "dtype": "uint8",
            "crs": ds.crs,
            "transform": ds.transform,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
            "nodata": 255,
        }
        with rasterio.open(out, "w", **profile) as dst:
            row = np.zeros((256, ds.width), np.uint8)
            for y in range(0, ds.height, 256):
                rows = min(256, ds.height - y)
                row[:rows] = (np.arange(ds.width) // 64 % CLASSES).astype(np.uint8)
                dst.write(row[:rows], 1, window=Window(0, y, ds.width, rows))
    total = time.perf_counter() - started
    return {"total_s": round(total, 3), "read_s": round(read, 3), "write_s": round(total - read, 3)}


def measure(kind: str, scene: Path, bands: int, source: Path | None = None, threads: int = TORCH_THREADS) -> dict:
    """One measurement in a fresh process: its figures and peak RSS; ``source`` is another checkout's geoseg."""
    call = f"b.{kind}(Path({str(scene)!r}){f', {bands}, {threads}' if kind == 'geoseg_run' else ''})"
    other = f"{import_from(source)}; " if source else ""
    code = (
        f"import json, resource, sys; {other}sys.path.insert(1, {str(HERE)!r}); import bench_floor as b; "
        f"from pathlib import Path; r = {call}; "
        f"r['peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024); print(json.dumps(r))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def import_from(source: Path) -> str:
    """Python code that makes a fresh interpreter import geoseg from the checkout ``source``, not the editable install."""
    return f"sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; sys.path.insert(0, {str(source)!r})"


def checkout(rev: str) -> Path:
    """A git worktree of ``rev`` under benchmarks/output (made once), to measure an earlier geoseg beside this one."""
    folder = WORK / f"rev-{rev}"
    if not folder.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(folder), rev], cwd=HERE, check=True, capture_output=True)
    return folder


def compare(rev: str, sizes: list[int], bands: list[int], rounds: int, threads: int = TORCH_THREADS) -> None:
    """Non-model time of ``rev`` and of this checkout in alternation, with the floor, best of ``rounds``."""
    source = checkout(rev)
    print(f"{'scene':>14} {'floor s':>8} {rev[:10]:>12} {'this':>8} {'speed-up':>9} {'ratio then':>11} {'ratio now':>10}")
    for size in sizes:
        for count in bands:
            scene = make_scene(WORK / f"floor_{size}_{count}b.tif", size, count)
            runs: dict[str, list[float]] = {"floor": [], "then": [], "now": []}
            for _ in range(rounds):
                runs["floor"].append(measure("floor_run", scene, count)["total_s"])
                for key, src in (("then", source), ("now", None)):
                    r = measure("geoseg_run", scene, count, src, threads)
                    runs[key].append(r["total_s"] - r.get("model_alone_s", r.get("model_s", 0.0)))
            floor, then, now = (min(v) for v in runs.values())
            print(
                f"{size:>6}² {count:>2} bands {floor:8.2f} {then:12.2f} {now:8.2f} {then / now:9.2f} "
                f"{then / floor:11.2f} {now / floor:10.2f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--bands", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--compare", metavar="REV", help="also measure geoseg at this git revision, in alternation")
    parser.add_argument("--rounds", type=int, default=3, help="with --compare: runs of each (the best counts)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures to FILE (benchmarks/suite.py)")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=TORCH_THREADS,
        metavar="N",
        help=f"torch's threads for the zero-cost runner (default {TORCH_THREADS}, as the copy to a GPU takes none)",
    )
    args = parser.parse_args()
    if args.json and args.compare:
        parser.error("--json writes the figures of the default measurement: leave out --compare")
    if args.torch_threads < 1:
        parser.error(f"--torch-threads {args.torch_threads}: give 1 or more")
    WORK.mkdir(exist_ok=True)
    if args.compare:
        compare(args.compare, args.sizes, args.bands, args.rounds, args.torch_threads)
        return
    rows = []
    for size in args.sizes:
        for bands in args.bands:
            scene = make_scene(WORK / f"floor_{size}_{bands}b.tif", size, bands)
            floor = measure("floor_run", scene, bands)
            ours = measure("geoseg_run", scene, bands, threads=args.torch_threads)
            non_model = ours["total_s"] - ours["model_alone_s"]
            row = {"size": size, "bands": bands, "torch_threads": args.torch_threads, "floor": floor, "geoseg": ours}
            row["non_model_s"] = round(non_model, 3)
            row["ratio"] = round(non_model / floor["total_s"], 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(
        f"\n{'scene':>14} {'floor s':>8} {'Mpx/s':>6} {'geoseg s':>9} {'model s':>8} {'non-model s':>12} "
        f"{'Mpx/s':>6} {'ratio':>6}"
    )
    for r in rows:
        mpx = r["size"] ** 2 / 1e6
        g = r["geoseg"]
        print(
            f"{r['size']:>6}² {r['bands']:>2} bands {r['floor']['total_s']:8.2f} {mpx / r['floor']['total_s']:6.1f} "
            f"{g['total_s']:9.2f} {g['model_alone_s']:8.2f} {r['non_model_s']:12.2f} {mpx / r['non_model_s']:6.1f} "
            f"{r['ratio']:6.2f}"
        )
    print("\nmodel s: the runner alone on the same number of batches; non-model: geoseg's time less that")
    print("ratio: geoseg's non-model time ÷ the I/O floor (target ≤ 1.5)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
