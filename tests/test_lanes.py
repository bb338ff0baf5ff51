"""Model lanes: onnxruntime calls run two at once on the CPU, their results taken in order, outputs unchanged."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

import geoseg
from geoseg.core import threads
from geoseg.core.threads import LANE_THREADS, MODEL_LANES, lanes_for, run_ahead
from geoseg.inference import runners
from geoseg.model.onnx import load_onnx
from tests.helpers import random_scene, write_raster

pytest.importorskip("onnxruntime", reason="onnxruntime is in the dev extra: pip install -e '.[dev]'")
pytest.importorskip("onnx", reason="onnx is in the dev extra: pip install -e '.[dev]'")


def test_run_ahead_overlaps_calls_and_keeps_their_order() -> None:
    barrier = threading.Barrier(2, timeout=10)  # passes only when two calls run at once

    def call(i: int) -> int:
        if i < 2:
            barrier.wait()
        time.sleep(0.02 * (3 - i))  # later items finish first
        return i * 10

    assert [(i, r) for i, r in run_ahead(range(4), call, lanes=2)] == [(0, 0), (1, 10), (2, 20), (3, 30)]


def test_one_lane_runs_each_call_in_the_callers_thread() -> None:
    threads = [t for _, t in run_ahead(range(3), lambda _: threading.current_thread(), lanes=1)]
    assert threads == [threading.main_thread()] * 3


def test_run_ahead_takes_an_item_only_when_a_lane_is_free() -> None:
    taken = []

    def items():
        for i in range(9):
            taken.append(i)
            yield i

    for done, (i, _) in enumerate(run_ahead(items(), lambda i: i, lanes=3), start=1):
        assert i == done - 1
        assert len(taken) - done < 3  # at most the lanes' items are taken and not yet yielded
    assert taken == list(range(9))


def test_waiting_for_a_lane_survives_the_futures_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Future.result(timeout)`` raises ``concurrent.futures.TimeoutError``: the waits go on. (Before Python 3.11 it
    is not the builtin ``TimeoutError``; this test tells the two apart only when run on 3.10.)"""
    import concurrent.futures

    class Slow(concurrent.futures.Future):
        waits = 0

        def result(self, timeout: float | None = None) -> int:
            Slow.waits += 1
            if Slow.waits < 3:
                raise concurrent.futures.TimeoutError()
            return 7

    monkeypatch.setattr(threads, "ThreadPoolExecutor", lambda *a, **k: _Pool(Slow))
    assert list(run_ahead([1, 2], lambda i: i, lanes=2)) == [(1, 7), (2, 7)] and Slow.waits == 4


class _Pool:
    def __init__(self, future: type) -> None:
        self.future = future

    def submit(self, fn, *args):  # noqa: ANN001, ANN202 - a stand-in for ThreadPoolExecutor
        return self.future()

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def test_run_ahead_raises_the_first_error_after_the_running_calls_end() -> None:
    started, finished = threading.Event(), threading.Event()

    def call(i: int) -> int:
        if i == 1:
            assert started.wait(10)  # item 2 is running when item 1 fails
            raise ValueError("chip 1 failed")
        if i == 2:
            started.set()
            time.sleep(0.3)
            finished.set()
        return i

    results = []
    with pytest.raises(ValueError, match="chip 1 failed"):
        for item in run_ahead(range(6), call, lanes=2):
            results.append(item)
    assert results == [(0, 0)]
    assert finished.is_set()  # a call still running (it may read a buffer the caller reuses) was waited for


def test_two_lanes_of_one_thread_on_two_cores_else_one_call_on_onnxruntimes_threads(
    onnx_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [lanes_for(n) for n in (1, 2, 3, 4, 16)] == [(1, 0), (2, 1), (1, 0), (1, 0), (1, 0)]
    model = load_onnx(onnx_model)
    assert model.session.get_session_options().intra_op_num_threads == LANE_THREADS
    assert runners.OnnxRunner(model).lanes == MODEL_LANES
    _two_lanes(monkeypatch)
    model = load_onnx(onnx_model)
    assert model.session.get_session_options().intra_op_num_threads == 1 and runners.OnnxRunner(model).lanes == 2
    monkeypatch.setattr(threads, "LANE_THREADS", 3)  # a session not made one thread per call (a CUDA fallback)
    assert runners.OnnxRunner(model).lanes == 1


def _two_lanes(monkeypatch: pytest.MonkeyPatch, lanes: int = 2) -> None:
    """Sessions of one thread per call and ``lanes`` calls at once, whatever this machine's cores."""
    monkeypatch.setattr(threads, "LANE_THREADS", 1)
    monkeypatch.setattr(threads, "MODEL_LANES", lanes)


def _slow_forward(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each model call waits before it reads its chips: a batch array refilled by the reader meanwhile would show.
    Returns [calls running now, most calls seen running at once]."""
    forward = runners.OnnxRunner._forward
    running, lock = [0, 0], threading.Lock()

    def slow(self: runners.OnnxRunner, x: np.ndarray) -> np.ndarray:
        with lock:
            running[0] += 1
            running[1] = max(running)
        time.sleep(0.01)
        try:
            return forward(self, x)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(runners.OnnxRunner, "_forward", slow)
    return running


@pytest.mark.parametrize("lanes", [2, 4])
def test_predict_in_lanes_writes_the_same_bytes_as_one_call_at_a_time(
    tmp_path: Path, onnx_model: Path, monkeypatch: pytest.MonkeyPatch, lanes: int
) -> None:
    data = random_scene((4, 150, 230), seed=3)
    data[:, :100, :120] = 0  # a nodata corner: batches of skipped chips pass through the lanes too
    scene = write_raster(tmp_path / "s.tif", data, descriptions=["B02", "B03", "B04", "B08"], nodata=0)
    running = _slow_forward(monkeypatch)
    outputs = {}
    for n in (1, lanes):
        _two_lanes(monkeypatch, n)
        running[1] = 0
        out = tmp_path / f"lanes{n}.tif"
        result = geoseg.predict(scene, onnx_model, out, confidence=tmp_path / f"conf{n}.tif", batch_size=1)
        assert result.chips_predicted > 2 * lanes and result.chips_skipped > 0
        assert running[1] == n if n == 1 else running[1] > 1  # the calls did overlap
        with rasterio.open(out) as a, rasterio.open(tmp_path / f"conf{n}.tif") as c:
            outputs[n] = (a.read(), c.read())
    assert np.array_equal(outputs[1][0], outputs[lanes][0])
    assert np.array_equal(outputs[1][1], outputs[lanes][1])


def test_a_failing_model_call_in_a_lane_stops_predict_with_no_output(
    tmp_path: Path, onnx_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene = write_raster(tmp_path / "s.tif", random_scene((4, 150, 230)), descriptions=["B02", "B03", "B04", "B08"])
    calls = itertools.count(1)
    forward = runners.OnnxRunner._forward

    def failing(self: runners.OnnxRunner, x: np.ndarray) -> np.ndarray:
        if next(calls) == 3:  # one number per call, also from two threads at once
            raise RuntimeError("onnxruntime ran out of memory")
        return forward(self, x)

    monkeypatch.setattr(runners.OnnxRunner, "_forward", failing)
    _two_lanes(monkeypatch)
    with pytest.raises(RuntimeError, match="out of memory"):
        geoseg.predict(scene, onnx_model, tmp_path / "out.tif", batch_size=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tif"]
