"""Small thread helpers: produce items in a background thread while the caller consumes them (:func:`prefetch`),
run calls in order in a background thread while the caller goes on (:class:`Serial`), and run a few calls at once
with their results taken in order (:func:`run_ahead`).

Producer threads still running when the interpreter exits (an interrupted
command whose generator was never closed) are stopped and joined at exit:
a daemon thread killed inside GDAL during finalization crashes the process.
"""

from __future__ import annotations

import atexit
import collections
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from geoseg.core.limits import affinity_cores, usable_cores

__all__ = [
    "LANE_THREADS",
    "MODEL_LANES",
    "ONE_CALL_THREADS",
    "PIPELINE_CORES",
    "Serial",
    "lanes_for",
    "prefetch",
    "quota_threads",
    "read_workers",
    "run_ahead",
    "share_cores",
    "stitch_threads",
    "stop_all",
]

T = TypeVar("T")
R = TypeVar("R")
POLL_S = 0.1
"""How often a :class:`Serial` thread with nothing queued looks whether it is to stop."""
STOP_WAIT_S = 10.0
"""How long closing a :class:`Serial` on an error waits for the call it is running."""


def lanes_for(cores: int, runnable: int | None = None) -> tuple[int, int]:
    """onnxruntime calls run at once on the CPU, and threads per call (0: onnxruntime's default), for ``cores``
    usable cores of the ``runnable`` ones the process may run on (default: as many; fewer usable: a CPU quota).

    On 2 cores two one-thread calls kept both cores busier than one call on two threads, whose threads wait for
    each other after every layer and for any core a reader, stitcher or writer thread takes (BENCHMARKS.md).
    Elsewhere one call at a time: calls at once share their session's thread pool, and more cores were not
    measured; its threads: :func:`quota_threads`.

    Example:
        >>> lanes_for(1), lanes_for(2), lanes_for(16), lanes_for(4, runnable=64)
        ((1, 0), (2, 1), (1, 0), (1, 4))
    """
    if cores == 2:
        return 2, 1
    return 1, quota_threads(cores, runnable)


def quota_threads(cores: int, runnable: int | None = None) -> int:
    """onnxruntime threads for one call at a time: ``cores`` where a CPU quota leaves fewer usable than the
    ``runnable`` cores, else 0 (onnxruntime's default: a thread per physical core, which does not see a quota).

    Example:
        >>> quota_threads(4, runnable=64), quota_threads(8, runnable=8), quota_threads(8)
        (4, 0, 0)
    """
    return cores if runnable is not None and cores < runnable else 0


_CORES, _RUNNABLE = usable_cores(), affinity_cores()  # read once: the cgroup files and the affinity
MODEL_LANES, LANE_THREADS = lanes_for(_CORES, _RUNNABLE)
"""The chip loop's onnxruntime calls at once on this machine's CPU, and onnxruntime's threads per call (its
``intra_op_num_threads``; 0: its default); see :func:`lanes_for` and :func:`~geoseg.core.limits.usable_cores`."""
ONE_CALL_THREADS = quota_threads(_CORES, _RUNNABLE)
"""onnxruntime's threads for a session whose calls run one at a time (the cloud mask's): :func:`quota_threads`."""


PIPELINE_CORES = _CORES
"""The cores one predict's own threads are sized to: its chip readers (:func:`read_workers`) and stitching threads
(:func:`stitch_threads`) with a model on the CPU, and GDAL's threads when its outputs are rewritten as COGs. The
usable cores, or a Dask worker's share of them (:func:`share_cores`)."""


def share_cores(cores: int) -> None:
    """Size what this process runs from now on to ``cores`` of the machine: onnxruntime one call at a time on
    ``cores`` threads (for sessions opened from now on), and :data:`PIPELINE_CORES`.

    For a process that shares the machine with others of its kind, such as a Dask worker (which runs one task per
    thread it has, each with ``cores=1``): onnxruntime's default (a thread per physical core), two calls at once,
    or readers and stitchers sized to the whole machine in each of them would start more threads than there are
    cores. A model on a GPU keeps its readers and stitchers sized to the usable cores (:func:`read_workers`).

    Example:
        >>> share_cores(1)  # doctest: +SKIP
        >>> read_workers(), stitch_threads()  # doctest: +SKIP
        (1, 1)
    """
    global MODEL_LANES, LANE_THREADS, ONE_CALL_THREADS, PIPELINE_CORES
    cores = max(1, cores)
    MODEL_LANES, LANE_THREADS, ONE_CALL_THREADS, PIPELINE_CORES = 1, cores, cores, cores


def read_workers(gpu: bool = False) -> int:
    """Threads reading chip windows at once: one per core of :data:`PIPELINE_CORES` (for a model on a GPU, ``gpu``:
    of the usable cores, also in a Dask worker), at most 8 (what a GPU needs fed: a core decompresses about 40 Mpx/s
    of 3-band deflate; more threads only contend for the disk and the block cache).

    Example:
        >>> 1 <= read_workers() <= read_workers(gpu=True) <= 8
        True
    """
    return max(1, min(8, _CORES if gpu else PIPELINE_CORES))


def stitch_threads(gpu: bool = False) -> int:
    """Bands of columns stitched at once on the CPU, each in its own thread: one per core of :data:`PIPELINE_CORES`
    (for a model on a GPU whose probabilities come back to the CPU, ``gpu``: of the usable cores), at most 4.

    Example:
        >>> 1 <= stitch_threads() <= stitch_threads(gpu=True) <= 4
        True
    """
    return max(1, min(4, _CORES if gpu else PIPELINE_CORES))


_DONE = object()
_ACTIVE: dict[threading.Thread, tuple[threading.Event, queue.Queue]] = {}


def _drain(thread: threading.Thread, stop: threading.Event, q: queue.Queue, timeout: float | None = None) -> None:
    """Stop a producer and take what it puts until it has ended (it may be blocked on a full queue)."""
    stop.set()
    waited = 0.0
    while thread.is_alive() and (timeout is None or waited < timeout):
        try:
            q.get(timeout=0.05)
        except queue.Empty:
            waited += 0.05


def stop_all(timeout: float = 30.0) -> None:
    """Stop every running :func:`prefetch` producer and wait (up to ``timeout`` s each) until it has ended.

    Example:
        >>> stop_all()
    """
    for thread, (stop, q) in list(_ACTIVE.items()):
        _drain(thread, stop, q, timeout)


atexit.register(stop_all)


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` produced in a background thread, at most ``depth`` ahead.

    Exceptions in the producer are raised in the consumer.

    Example:
        >>> list(prefetch(range(5)))
        [0, 1, 2, 3, 4]
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put((item, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put((None, exc))
            return
        q.put((_DONE, None))

    thread = threading.Thread(target=produce, name="geoseg-reader", daemon=True)
    _ACTIVE[thread] = (stop, q)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if exc is not None:
                raise exc
            if item is _DONE:
                return
            yield item
    finally:
        _drain(thread, stop, q)
        _ACTIVE.pop(thread, None)


class Serial:
    """Runs submitted calls one after another in a background thread, in order, at most ``depth`` waiting.

    The first error is raised by the next :meth:`submit` or by :meth:`close`
    (later calls are dropped); :meth:`close` waits until every call has run.

    Example:
        >>> out = []
        >>> writer = Serial("doc-writer")
        >>> for i in range(3):
        ...     writer.submit(out.append, i)
        >>> writer.close()
        >>> out
        [0, 1, 2]
    """

    def __init__(self, name: str, depth: int = 4) -> None:
        self.q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.error: BaseException | None = None
        self.stop = threading.Event()  # set by close(raise_error=False): queued calls are dropped, the thread ends
        self.thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.closed = False
        self.thread.start()

    def _work(self) -> None:
        while True:
            try:  # polled: a Ctrl-C or SIGTERM landing inside the caller's put can lose the wake-up
                item = self.q.get(timeout=POLL_S)
            except queue.Empty:
                if self.stop.is_set():
                    return
                continue
            if item is None:
                return
            if self.error is None and not self.stop.is_set():
                fn, args = item
                try:
                    fn(*args)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    self.error = exc

    def submit(self, fn: Callable[..., object], *args: object) -> None:
        """Queue ``fn(*args)`` (waits while ``depth`` calls are queued); raises an earlier call's error."""
        if self.error is not None:
            raise self.error
        self.q.put((fn, args))

    def close(self, raise_error: bool = True) -> None:
        """Wait for every queued call; raise the first error one of them raised (unless ``raise_error`` is False).

        With ``raise_error`` False (an error or an interrupt is on its way up) the calls still queued are dropped
        and the queue is not touched (an interrupt inside a queue operation can leave it unusable): the thread
        ends after the call it is running, waited for at most :data:`STOP_WAIT_S` seconds.
        """
        if not self.closed:
            self.closed = True
            if not raise_error:
                self.stop.set()
                self.thread.join(STOP_WAIT_S)
            else:
                self.q.put(None)
                self.thread.join()
        if self.error is not None and raise_error:
            error, self.error = self.error, None
            raise error


def run_ahead(
    items: Iterable[T], call: Callable[[T], R], lanes: int, name: str = "geoseg-lane"
) -> Generator[tuple[T, R], None, None]:
    """``(item, call(item))`` for each item, in order, with up to ``lanes`` calls running at once in threads.

    ``call`` must release the GIL for the calls to overlap (onnxruntime's
    ``run`` does). With ``lanes`` 1 each call runs in the caller's thread, as
    a plain loop would. An item is taken from ``items`` only when a lane is
    free, so at most ``lanes`` items are in calls or waiting to be yielded.
    The first error is raised in order; calls still running are waited for
    (they may use buffers the caller reuses), queued ones dropped.

    Example:
        >>> [r for _, r in run_ahead(range(5), lambda i: i * i, lanes=2)]
        [0, 1, 4, 9, 16]
    """
    if lanes <= 1:
        for item in items:
            yield item, call(item)
        return
    pool = ThreadPoolExecutor(lanes, thread_name_prefix=name)
    running: collections.deque[tuple[T, Future[R]]] = collections.deque()
    try:
        for item in items:
            running.append((item, pool.submit(call, item)))
            if len(running) == lanes:
                yield _oldest(running)
        while running:
            yield _oldest(running)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _oldest(running: collections.deque[tuple[T, Future[R]]]) -> tuple[T, R]:
    """The oldest call's item and result, waited for in short steps (a Ctrl-C is taken between them, also on Windows)."""
    item, future = running[0]
    while True:
        try:
            result = future.result(timeout=POLL_S)
        except futures.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            continue
        running.popleft()
        return item, result
