"""A batch of scenes: one process (both cores) against Dask workers with one thread each, in one run.

Six generated 1536 x 1536 scenes (4 bands, uint16), Unet-resnet18, 256 px chips,
32 px overlap, torch backend, polygons with --min-area 500. Runs: one process
with torch using both cores; a LocalCluster with 1 single-thread worker; a
LocalCluster with 2 single-thread workers. Prints wall times, speed-ups and
each worker's peak RSS.

    .venv/bin/python benchmarks/bench_batch.py [SCENES] [SIZE]
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

import geoseg
from geoseg.flows.batch import run_batch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_predict import make_scene  # noqa: E402

OPTIONS = {"min_area": 500.0, "backend": "torch", "batch_size": 8}  # as measured (the CPU default is now 2)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def on_cluster(scenes: list[str], out: Path, model: Path, workers: int) -> tuple[float, list[float]]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        start = time.perf_counter()
        result = run_batch(scenes, out, str(model), scheduler=cluster.scheduler_address, **OPTIONS)
        seconds = time.perf_counter() - start
        assert not result.failed
        rss = sorted(client.run(peak_rss_mb).values())
    return seconds, rss


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 1536
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scenes = [str(make_scene(tmp / f"scene_{i}.tif", size, size)) for i in range(count)]
        model = geoseg.create_model(
            "unet",
            "resnet18",
            bands=["B02", "B03", "B04", "B08"],
            classes=3,
            chip_size=256,
            overlap="32px",
            mean=[1000] * 4,
            std=[500] * 4,
        ).save(tmp / "model.pt")
        start = time.perf_counter()
        assert not run_batch(scenes, tmp / "single", str(model), **OPTIONS).failed
        single = time.perf_counter() - start
        one, rss1 = on_cluster(scenes, tmp / "w1", model, 1)
        two, rss2 = on_cluster(scenes, tmp / "w2", model, 2)
    print(f"{count} scenes of {size}x{size}, torch threads in the single process: {torch.get_num_threads()}")
    print("| run | wall s | scenes/min | worker peak RSS MB |")
    print("|---|---:|---:|---|")
    print(f"| one process, torch on both cores | {single:.1f} | {60 * count / single:.1f} | {peak_rss_mb():.0f} (process) |")
    print(f"| Dask, 1 worker x 1 thread | {one:.1f} | {60 * count / one:.1f} | {', '.join(f'{r:.0f}' for r in rss1)} |")
    print(f"| Dask, 2 workers x 1 thread | {two:.1f} | {60 * count / two:.1f} | {', '.join(f'{r:.0f}' for r in rss2)} |")
    print(f"2 workers vs 1 worker: {one / two:.2f}x; 2 workers vs one process on both cores: {single / two:.2f}x")


if __name__ == "__main__":
    main()
