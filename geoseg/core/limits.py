"""What this process may use of the machine: CPU cores and memory, a container's limits counted.

A container (``docker --cpus 2 --memory 4g``, a Kubernetes pod's limits, a
Slurm job) sees the host's cores and memory in ``os.cpu_count()`` and
``/proc/meminfo``; its limits are in its cgroup (v1 or v2). geoseg sizes its
thread pools, onnxruntime's and torch's threads and local Dask workers by
:func:`usable_cores` and :func:`usable_memory`. Only the kernel's cgroup
files are read here.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["affinity_cores", "cpu_quota", "memory_limit", "usable_cores", "usable_memory"]

CGROUP_ROOT = "/sys/fs/cgroup"
OWN_CGROUP = "/proc/self/cgroup"


def cpu_quota(root: str | os.PathLike[str] = CGROUP_ROOT, own: str | os.PathLike[str] = OWN_CGROUP) -> float | None:
    """CPUs a cgroup's quota lets this process use (``docker --cpus 1.5``: 1.5), or None where there is none.

    Reads cgroup v2's ``cpu.max`` or v1's ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us`` under ``root``, in the
    process's own cgroup (named in ``own``) and each one above it; the smallest quota counts. Inside a container
    the container's cgroup is ``root`` itself.

    Example:
        >>> cpu_quota("/nonexistent") is None
        True
    """
    return _smallest(Path(root), Path(own), ("cpu", "cpu,cpuacct", "cpuacct,cpu"), _quota_in)


def memory_limit(root: str | os.PathLike[str] = CGROUP_ROOT, own: str | os.PathLike[str] = OWN_CGROUP) -> int | None:
    """Bytes of memory a cgroup's limit lets this process use (``docker --memory 4g``), or None where there is none.

    Reads cgroup v2's ``memory.max`` or v1's ``memory.limit_in_bytes`` the same way as :func:`cpu_quota`.

    Example:
        >>> memory_limit("/nonexistent") is None
        True
    """
    limit = _smallest(Path(root), Path(own), ("memory",), _memory_in)
    return None if limit is None else int(limit)


def _smallest(root: Path, own: Path, v1_folders: tuple[str, ...], read: Callable[[Path], float | None]) -> float | None:
    """The smallest limit ``read(folder)`` finds in the process's cgroup and those above it (v2, or v1's folders)."""
    found = []
    try:
        for path, top in _cgroup_dirs(root, own, v1_folders):
            for folder in [path, *path.parents]:
                if not folder.is_relative_to(top):
                    break
                value = read(folder)
                if value is not None:
                    found.append(value)
    except OSError:  # a sandbox that denies looking at cgroups: no limit known (geoseg is imported all the same)
        return None
    return min(found) if found else None


def _cgroup_dirs(root: Path, own: Path, v1_folders: tuple[str, ...]) -> list[tuple[Path, Path]]:
    """(the process's cgroup folder, the hierarchy's root folder) for cgroup v2 and for a v1 controller."""
    try:
        lines = own.read_text().splitlines()
    except OSError:
        lines = []
    controller = v1_folders[0]
    found = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # v2: one hierarchy
            tops = [root]
        elif controller in controllers.split(","):  # v1: the controller's own hierarchy
            tops = [root / name for name in v1_folders]
        else:
            continue
        for top in tops:
            if top.is_dir():
                mine = top / path.lstrip("/")
                found.append((mine if mine.is_dir() else top, top))  # a container sees its own cgroup at the top
    return found or [(root, root)]


def _quota_in(folder: Path) -> float | None:
    """The CPU quota set in one cgroup folder (v2 ``cpu.max`` "200000 100000", v1 two files; -1 or max: none)."""
    try:
        if (folder / "cpu.max").is_file():
            quota, period = ((folder / "cpu.max").read_text().split() + ["100000"])[:2]
        elif (folder / "cpu.cfs_quota_us").is_file():
            quota = (folder / "cpu.cfs_quota_us").read_text().strip()
            period = (folder / "cpu.cfs_period_us").read_text().strip()
        else:
            return None
        if quota in ("max", "-1") or float(period) <= 0:
            return None
        return float(quota) / float(period)
    except (OSError, ValueError):
        return None


def _memory_in(folder: Path) -> int | None:
    """The memory limit set in one cgroup folder (v2 ``memory.max``, v1 ``memory.limit_in_bytes``; max or a value
    beyond 2**60, v1's way of saying unlimited: none)."""
    try:
        for name in ("memory.max", "memory.limit_in_bytes"):
            if (folder / name).is_file():
                text = (folder / name).read_text().strip()
                if text == "max" or int(text) >= 1 << 60:
                    return None
                return int(text)
        return None
    except (OSError, ValueError):
        return None


def affinity_cores() -> int:
    """The cores this process may run on (its affinity where the OS tells it, e.g. under ``taskset``), a quota aside.

    Example:
        >>> affinity_cores() >= 1
        True
    """
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        with contextlib.suppress(OSError):
            return max(1, len(affinity(0)))
    return max(1, os.cpu_count() or 1)


def usable_cores() -> int:
    """CPU cores this process may use, at least 1: those it may run on (:func:`affinity_cores`), fewer where a
    container's or cgroup's CPU quota allows less (rounded up, see :func:`cpu_quota`).

    Example:
        >>> usable_cores() >= 1
        True
    """
    cores = affinity_cores()
    quota = cpu_quota()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def usable_memory() -> int | None:
    """Bytes of memory this process may use: the machine's, less where a cgroup's limit allows less (see
    :func:`memory_limit`); None where neither is known (Windows without psutil).

    Example:
        >>> usable_memory() is None or usable_memory() > 0
        True
    """
    try:
        physical: int | None = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX (Windows): psutil where installed (Dask brings it)
        try:
            import psutil

            physical = int(psutil.virtual_memory().total)
        except ImportError:
            physical = None
    limit = memory_limit()
    known = [m for m in (physical, limit) if m]
    return min(known) if known else None
