"""Usable cores and memory: a container's limits (cgroup v1 and v2) and the process's affinity size geoseg's threads
and local Dask workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geoseg.core import limits, threads
from geoseg.core.errors import InputError
from geoseg.core.limits import cpu_quota, memory_limit, usable_cores, usable_memory
from geoseg.core.threads import lanes_for
from geoseg.inference import runners
from geoseg.model.onnx import load_onnx


def _files(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_cgroup_v2_quota_of_a_container_and_of_a_nested_cgroup(tmp_path: Path) -> None:
    root = _files(tmp_path / "a", {"cpu.max": "150000 100000\n", "own": "0::/\n"})
    assert cpu_quota(root, root / "own") == 1.5  # docker --cpus 1.5: the container's cgroup is the root it sees
    root = _files(
        tmp_path / "b",
        {"user.slice/job/cpu.max": "max 100000\n", "user.slice/cpu.max": "300000 100000\n", "own": "0::/user.slice/job\n"},
    )
    assert cpu_quota(root, root / "own") == 3.0  # no limit of its own: its parent's counts
    _files(root, {"user.slice/job/cpu.max": "100000 50000\n"})
    assert cpu_quota(root, root / "own") == 2.0  # the smallest of the cgroup and those above it


def test_cgroup_v1_quota_and_no_quota(tmp_path: Path) -> None:
    files = {"cpu,cpuacct/cpu.cfs_quota_us": "200000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}
    own = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n"  # the host's path: not there inside the container
    root = _files(tmp_path / "v1", {**files, "own": own})
    assert cpu_quota(root, root / "own") == 2.0
    _files(root, {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n"})
    assert cpu_quota(root, root / "own") is None  # -1: no quota
    root = _files(tmp_path / "none", {"cpu.max": "max 100000\n", "own": "0::/\n"})
    assert cpu_quota(root, root / "own") is None
    root = _files(tmp_path / "bad", {"cpu.max": "lots\n", "own": "0::/\n"})
    assert cpu_quota(root, root / "own") is None  # an unreadable value is no quota, not an error
    assert cpu_quota(tmp_path / "missing", tmp_path / "missing" / "own") is None  # not Linux, or no cgroups


def test_cgroup_v1_cpu_mounted_alone_nested_and_an_unreadable_own_file(tmp_path: Path) -> None:
    files = {"cpu/cpu.cfs_quota_us": "150000\n", "cpu/cpu.cfs_period_us": "100000\n"}
    nested = {"cpu/job/task/cpu.cfs_quota_us": "-1\n", "cpu/job/task/cpu.cfs_period_us": "100000\n"}
    root = _files(tmp_path / "v1", {**files, **nested, "own": "1:cpu:/job/task\n2:cpuacct:/\n"})
    assert cpu_quota(root, root / "own") == 1.5  # walked up from job/task to the top
    root = _files(tmp_path / "v2", {"cpu.max": "200000 100000\n"})
    assert cpu_quota(root, root / "unreadable") == 2.0  # no /proc/self/cgroup: the root's own limit


def test_a_cgroup_folder_that_cannot_be_looked_at_is_no_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _files(tmp_path, {"cpu.max": "200000 100000\n", "own": "0::/\n"})

    def denied(self: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "is_dir", denied)
    assert cpu_quota(root, root / "own") is None  # a sandbox that denies stat: geoseg still imports


def test_memory_limits_of_cgroup_v1_and_v2(tmp_path: Path) -> None:
    root = _files(tmp_path / "v2", {"memory.max": "4294967296\n", "own": "0::/\n"})
    assert memory_limit(root, root / "own") == 4 << 30  # docker --memory 4g
    root = _files(tmp_path / "v2n", {"job/memory.max": "max\n", "memory.max": "2147483648\n", "own": "0::/job\n"})
    assert memory_limit(root, root / "own") == 2 << 30
    _files(root, {"job/memory.max": "4294967296\n"})
    assert memory_limit(root, root / "own") == 2 << 30  # a parent's smaller limit counts
    own = "5:memory:/process_api/x\n3:cpu:/\n"
    root = _files(tmp_path / "v1", {"memory/memory.limit_in_bytes": "9223372036854771712\n", "own": own})
    assert memory_limit(root, root / "own") is None  # v1's unlimited
    _files(root, {"memory/process_api/x/memory.limit_in_bytes": "1073741824\n"})
    assert memory_limit(root, root / "own") == 1 << 30  # the process's own cgroup, below the root
    assert cpu_quota(root, root / "own") is None  # the cpu hierarchy has no quota files


def test_dask_workers_fit_a_containers_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from geoseg.flows import dask

    monkeypatch.setattr(dask, "usable_cores", lambda: 8)
    monkeypatch.setattr(dask, "usable_memory", lambda: 3 << 30)  # a container of 3.2 GB: three workers of about 1 GB
    assert dask.max_workers() == 3
    monkeypatch.setattr(dask, "usable_memory", lambda: 512 << 20)
    assert dask.max_workers() == 1  # still one
    monkeypatch.setattr(dask, "usable_memory", lambda: None)  # not known: the cores alone
    assert dask.max_workers() == 8
    monkeypatch.setattr(limits, "memory_limit", lambda: 3 << 30)
    assert usable_memory() == 3 << 30 or usable_memory() < 3 << 30  # the limit, or the machine's where smaller
    monkeypatch.setattr(dask, "usable_memory", lambda: 3 << 30)
    with pytest.raises(InputError, match=r"at most 3 geoseg workers \(8 usable CPU cores, 3.2 GB of usable memory"):
        dask.make_client(4, None)


def test_usable_cores_is_the_affinity_capped_by_the_quota_rounded_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "cpu_quota", lambda: None)
    cores = usable_cores()
    assert cores == len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores == os.cpu_count()
    monkeypatch.setattr(limits, "cpu_quota", lambda: 0.5)
    assert usable_cores() == 1
    monkeypatch.setattr(limits, "cpu_quota", lambda: 1000.0)
    assert usable_cores() == cores  # a quota above the cores changes nothing


def test_onnxruntime_gets_the_usable_cores_where_a_quota_leaves_fewer(onnx_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert lanes_for(4, runnable=64) == (1, 4)  # onnxruntime's default would start a thread per host core
    assert lanes_for(2, runnable=64) == (2, 1)
    assert lanes_for(16, runnable=16) == (1, 0)  # no quota (taskset alone): onnxruntime's own default
    monkeypatch.setattr(threads, "LANE_THREADS", 4)  # what a 4-CPU quota on a larger machine gives
    monkeypatch.setattr(threads, "MODEL_LANES", 1)
    model = load_onnx(onnx_model)
    assert model.session.get_session_options().intra_op_num_threads == 4
    assert runners.OnnxRunner(model).lanes == 1  # one call at a time on the quota's threads


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2, reason="needs 2 cores and Linux")
def test_a_process_limited_to_one_core_sizes_every_pool_to_it() -> None:
    code = (
        "import json, os\n"
        "os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
        "from geoseg.core import limits, threads\n"
        "from geoseg.inference import loop\n"
        "from geoseg.flows import dask\n"
        "from geoseg.training.distributed import Dist, process_threads\n"
        "print(json.dumps([limits.usable_cores(), threads.MODEL_LANES, threads.LANE_THREADS, threads.read_workers(),\n"
        "    len(loop.stitch_bands(0, 100000, 256)), dask.max_workers(), process_threads(None, Dist(0, 2), 'cpu')]))\n"
    )
    env = {**os.environ, "LOCAL_WORLD_SIZE": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert json.loads(out) == [1, 1, 0, 1, 1, 1, 1]  # affinity alone, no quota: onnxruntime keeps its own default


def test_torch_on_the_cpu_runs_no_more_threads_than_usable_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from geoseg.inference.runners import TorchRunner
    from geoseg.model import device

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(device, "usable_cores", lambda: 1)  # a container allowed 1 CPU
        TorchRunner(torch.nn.Conv2d(3, 2, 1), "cpu")
        assert torch.get_num_threads() == 1
        monkeypatch.setattr(device, "usable_cores", lambda: 8)
        TorchRunner(torch.nn.Conv2d(3, 2, 1), "cpu")
        assert torch.get_num_threads() == 1  # never raised: a caller's own setting stays
    finally:
        torch.set_num_threads(before)


def test_a_dask_worker_runs_each_task_on_one_core(onnx_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from geoseg.core.options import RunOptions
    from geoseg.flows import dask
    from geoseg.inference import loop

    for name in ("MODEL_LANES", "LANE_THREADS", "ONE_CALL_THREADS", "PIPELINE_CORES"):  # restored after the test
        monkeypatch.setattr(threads, name, getattr(threads, name))
    monkeypatch.setattr(threads, "MODEL_LANES", 2)  # as on a 2-core machine: two calls at once
    monkeypatch.setattr(threads, "LANE_THREADS", 3)
    monkeypatch.setattr(threads, "PIPELINE_CORES", 8)  # as on an 8-core machine: 8 readers, 4 stitching threads
    assert (threads.read_workers(), len(loop.stitch_bands(0, 100000, 256))) == (8, 4)
    monkeypatch.setattr(dask, "_WORKER_MODELS", {})
    monkeypatch.setattr(dask, "_in_worker", lambda: True)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        model = dask._worker_model(str(onnx_model), RunOptions())
        assert torch.get_num_threads() == 1  # a worker runs as many tasks at once as it has threads
    finally:
        torch.set_num_threads(before)
    assert model.session.get_session_options().intra_op_num_threads == 1
    assert runners.OnnxRunner(model).lanes == 1  # not two calls in each of the machine's workers
    assert threads.ONE_CALL_THREADS == 1  # the cloud mask's session too
    assert (threads.read_workers(), len(loop.stitch_bands(0, 100000, 256))) == (1, 1)  # not the whole machine's


def test_predict_sizes_its_readers_stitchers_and_cog_rewrite_to_the_pipeline_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a Dask worker's share of the cores (threads.PIPELINE_CORES) gives a predict on the CPU: as many chip
    reader threads, stitching threads (bands of at least 8 chips) and GDAL threads in the COG rewrite; a model on a
    GPU keeps the usable cores for its readers."""
    import threading

    import rasterio.shutil

    import geoseg
    from geoseg.inference import loop
    from tests.helpers import BandLogits, random_scene, wrap, write_raster

    scene = write_raster(tmp_path / "s.tif", random_scene((3, 64, 1600), "uint16", seed=5))
    model = wrap(BandLogits(), 3, 3, 32, "8px")  # 67 chips across: bands of 8 chips fit 4 stitching threads
    seen: dict[str, set[str]] = {"read": set(), "stitch": set(), "cog": set()}
    read, rows, copy = loop.ChipLoop._read, loop.ChipLoop.write_rows, rasterio.shutil.copy

    def reading(self, *args):  # noqa: ANN001, ANN202
        seen["read"].add(threading.current_thread().name)
        return read(self, *args)

    def stitching(self, *args):  # noqa: ANN001, ANN202 - the stitcher's sink runs in its band's thread
        seen["stitch"].add(threading.current_thread().name)
        return rows(self, *args)

    def rewriting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen["cog"].add(kwargs["num_threads"])
        return copy(*args, **kwargs)

    monkeypatch.setattr(loop.ChipLoop, "_read", reading)
    monkeypatch.setattr(loop.ChipLoop, "write_rows", stitching)
    monkeypatch.setattr(rasterio.shutil, "copy", rewriting)
    for cores in (1, 3):
        monkeypatch.setattr(threads, "PIPELINE_CORES", cores)
        for kind in seen:
            seen[kind].clear()
        geoseg.predict(scene, model, tmp_path / f"c{cores}.tif", device="cpu", overwrite=True)
        assert len(seen["read"]) == cores and all(name.startswith("geoseg-read") for name in seen["read"])
        assert len(seen["stitch"]) == cores and all(name.startswith("geoseg-stitch") for name in seen["stitch"])
        assert seen["cog"] == {str(cores)}
    monkeypatch.setattr(threads, "_CORES", 3)
    monkeypatch.setattr(threads, "PIPELINE_CORES", 1)  # a Dask worker's one core, with its model on a GPU
    assert (threads.read_workers(gpu=True), threads.stitch_threads(gpu=True)) == (3, 3)
    assert (threads.read_workers(), threads.stitch_threads()) == (1, 1)
