"""Small thread helpers: produce items in a background thread while the caller consumes them.

Producer threads still running when the interpreter exits (an interrupted
command whose generator was never closed) are stopped and joined at exit:
a daemon thread killed inside GDAL during finalization crashes the process.
"""

from __future__ import annotations

import atexit
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["prefetch", "stop_all"]

T = TypeVar("T")
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
