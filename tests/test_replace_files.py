"""Replacing outputs that another program holds open, as on Windows, and the leftovers of killed processes.

Only Linux runs here, so Windows is simulated: ``os.replace`` and ``os.unlink`` raise PermissionError (WinError 32
is errno 13) for a file that QGIS or a virus scanner "holds open", as Windows does.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import geoseg
from geoseg.core.errors import OutputError
from geoseg.io import leftovers, renames
from geoseg.io.leftovers import remove_stale
from geoseg.io.outputs import write_text_atomic
from tests.helpers import random_scene, run, write_raster

BANDS = ["B02", "B03", "B04", "B08"]
DEAD = 4194301
"""A process id no process has (Linux's pid_max is below)."""


class Locks:
    """Files "held open by another program", as on Windows: renaming or deleting one in ``held`` fails, one in
    ``brief`` only for that many attempts (a virus scanner's look), deleting one in ``undeletable`` fails."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.held: set[str] = set()
        self.undeletable: set[str] = set()
        self.brief: dict[str, int] = {}
        self.refused: list[tuple[str, str]] = []
        real_replace, real_unlink = os.replace, os.unlink

        def replace(src: object, dst: object, **kw: object) -> None:
            self._check("replace", src, dst)
            real_replace(src, dst, **kw)

        def unlink(path: object, **kw: object) -> None:
            if os.path.abspath(os.fspath(path)) in self.undeletable:
                raise PermissionError(13, "The process cannot access the file because it is being used by another process")
            self._check("unlink", path)
            real_unlink(path, **kw)

        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "unlink", unlink)
        monkeypatch.setattr(renames, "RETRY_SECONDS", 0.1)

    def hold(self, path: Path, attempts: int | None = None) -> None:
        if attempts is None:
            self.held.add(os.path.abspath(path))
        else:
            self.brief[os.path.abspath(path)] = attempts

    def _check(self, op: str, *paths: object) -> None:
        for path in map(os.path.abspath, map(os.fspath, paths)):
            if path in self.held or self.brief.get(path, 0) > 0:
                if path in self.brief:
                    self.brief[path] -= 1
                self.refused.append((op, os.path.basename(path)))
                raise PermissionError(13, "The process cannot access the file because it is being used by another process", path)


@pytest.fixture
def locks(monkeypatch: pytest.MonkeyPatch) -> Iterator[Locks]:
    yield Locks(monkeypatch)


def _scene(folder: Path, seed: int) -> Path:
    return write_raster(folder / f"scene{seed}.tif", random_scene((4, 45, 67), seed=seed), descriptions=BANDS)


def _predict(unet_path: Path, scene: Path, out: Path, overwrite: bool = True) -> None:
    geoseg.predict(scene, unet_path, out / "classes.tif", confidence=out / "confidence.tif", device="cpu", overwrite=overwrite)


@pytest.fixture
def first(unet_path: Path, tmp_path: Path) -> dict[str, bytes]:
    """A class map and its confidence in ``tmp_path/out``, predicted from one scene; a second scene beside it."""
    out = tmp_path / "out"
    out.mkdir()
    _predict(unet_path, _scene(tmp_path, 0), out, overwrite=False)
    _scene(tmp_path, 1)
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _contents(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir()}


def test_a_class_map_held_open_is_named_in_one_line_and_leaves_nothing(
    locks: Locks, first: dict[str, bytes], unet_path: Path, tmp_path: Path, runner
) -> None:
    out = tmp_path / "out"
    locks.hold(out / "classes.tif")
    with pytest.raises(OutputError, match=r"cannot replace .*classes\.tif \(.*\): close programs that hold it open \(QGIS"):
        _predict(unet_path, tmp_path / "scene1.tif", out)
    assert _contents(out) == first  # no .partial left, nothing replaced

    args = ["predict", tmp_path / "scene1.tif", "-m", unet_path, "-o", out / "classes.tif", "--device", "cpu"]
    result = run(runner, *args, "--overwrite")
    assert result.exit_code == 1
    message = result.output.strip().splitlines()[-1]
    assert "unexpected" not in message and "classes.tif" in message and "close programs that hold it open" in message
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_text_output_held_open_is_named_and_its_temporary_file_removed(locks: Locks, tmp_path: Path) -> None:
    target = write_text_atomic(tmp_path / "areas.csv", "old")
    locks.hold(target)
    with pytest.raises(OutputError, match="cannot replace .*areas.csv .*close programs that hold it open"):
        write_text_atomic(target, "new")
    assert [p.name for p in tmp_path.iterdir()] == ["areas.csv"] and target.read_text() == "old"


def test_a_momentary_lock_is_waited_for(locks: Locks, first: dict[str, bytes], unet_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    locks.hold(out / "confidence.tif", attempts=2)  # a virus scanner looking at it
    _predict(unet_path, tmp_path / "scene1.tif", out)
    assert locks.refused and sorted(_contents(out)) == sorted(first)  # no .old or .partial left
    assert all(_contents(out)[name] != data for name, data in first.items())


def test_files_written_together_are_replaced_all_or_none(
    locks: Locks, first: dict[str, bytes], unet_path: Path, tmp_path: Path
) -> None:
    """confidence.tif held open: classes.tif keeps its pixels too, so the two still match."""
    out = tmp_path / "out"
    locks.hold(out / "confidence.tif")
    with pytest.raises(OSError) as failure:
        _predict(unet_path, tmp_path / "scene1.tif", out)
    assert _contents(out) == first
    assert isinstance(failure.value, OutputError)
    assert re.match(r"cannot replace .*confidence\.tif .*close programs that hold it open", str(failure.value))

    locks.held.clear()  # closed in QGIS: the run again replaces both
    _predict(unet_path, tmp_path / "scene1.tif", out)
    assert sorted(_contents(out)) == sorted(first)
    assert all(_contents(out)[name] != data for name, data in first.items())


def test_a_new_file_that_cannot_be_moved_in_puts_every_target_back(
    locks: Locks, first: dict[str, bytes], unet_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The targets are moved aside, then a new file cannot be moved in: the moved-aside ones go back."""
    out = tmp_path / "out"
    real_replace = os.replace

    def replace(src: object, dst: object, **kw: object) -> None:
        if ".cog.partial" in os.fspath(src) and os.path.basename(dst) == "confidence.tif":
            raise PermissionError(13, "Access is denied", os.fspath(src))
        real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError) as failure:
        _predict(unet_path, tmp_path / "scene1.tif", out)
    assert _contents(out) == first
    assert isinstance(failure.value, OutputError) and "confidence.tif" in str(failure.value)


def test_an_old_file_still_open_after_the_swap_is_left_for_a_later_run(
    locks: Locks, first: dict[str, bytes], unet_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    out = tmp_path / "out"
    real_temp_name = renames.temp_name
    olds: list[Path] = []

    def temp_name(name: str, kind: str = "partial", suffix: str = "", token: str | None = None) -> str:
        made = real_temp_name(name, kind, suffix, token)
        if kind == "old":
            olds.append(out / made)
            locks.undeletable.add(str(out / made))  # deleting it fails: open in another program
        return made

    monkeypatch.setattr(renames, "temp_name", temp_name)
    with caplog.at_level(logging.DEBUG, logger="geoseg"):
        _predict(unet_path, tmp_path / "scene1.tif", out)
    assert len(olds) == 2 and all(p.exists() for p in olds)
    assert "left for a later run" in caplog.text
    assert all(_contents(out)[name] != data for name, data in first.items())
    locks.undeletable.clear()
    monkeypatch.setattr(leftovers, "pid_alive", lambda pid: False)  # this process has ended
    assert sorted(remove_stale(out / "classes.tif") + remove_stale(out / "confidence.tif")) == sorted(olds)
    assert sorted(_contents(out)) == sorted(first)


def test_a_file_moved_aside_by_a_killed_process_is_put_back(tmp_path: Path) -> None:
    """Killed between moving classes.tif aside and moving the new one in: the next run restores it; an OUTDIR named
    ``classes`` moved aside is not taken for ``classes.tif`` (both match by stem)."""
    old_file = tmp_path / f".classes.tif.{DEAD}.0123abcd.old"
    old_file.write_bytes(b"old classes")
    old_folder = tmp_path / f".classes.{DEAD}.4567cdef.old"  # another swap (a folder's): another token
    old_folder.mkdir()
    (old_folder / "run.json").write_text("{}")
    remove_stale(tmp_path / "classes.tif")
    assert (tmp_path / "classes.tif").read_bytes() == b"old classes" and old_folder.is_dir()
    remove_stale(tmp_path / "classes")
    assert (tmp_path / "classes" / "run.json").is_file() and not old_folder.exists()


def test_a_leftover_still_open_does_not_stop_the_next_run(locks: Locks, unet_path: Path, tmp_path: Path) -> None:
    """On Windows a leftover of a killed process may still be open (a scanner): it is left, and the run goes on."""
    out = tmp_path / "out"
    out.mkdir()
    stuck = out / f".classes.{DEAD}.0123abcd.partial.tif"
    gone = out / f".confidence.{DEAD}.0123abcd.cog.partial.tif"
    for path in (stuck, gone):
        path.write_bytes(b"partial")
    locks.hold(stuck)
    _predict(unet_path, _scene(tmp_path, 0), out, overwrite=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(["classes.tif", "confidence.tif", stuck.name])
    assert remove_stale(out / "classes.tif") == []


class _Kernel32:
    """What ``_windows_pid_alive`` calls of Windows' kernel32, answering as for a process in ``state``."""

    def __init__(self, state: str) -> None:
        self.state, self.closed = state, 0

        def open_process(access: int, inherit: bool, pid: int) -> int | None:
            assert access == 0x1000
            return None if state in ("denied", "gone") else 42

        def exit_code(handle: int, ref: object) -> int:
            ref._obj.value = 259 if state == "running" else 0
            return 1

        def close(handle: int) -> int:
            assert handle == 42
            self.closed += 1
            return 1

        self.OpenProcess, self.GetExitCodeProcess, self.CloseHandle = open_process, exit_code, close


@pytest.mark.parametrize(
    ("state", "alive"), [("running", True), ("exited", False), ("denied", True), ("gone", False)]
)  # fmt: skip
def test_windows_pid_alive(monkeypatch: pytest.MonkeyPatch, state: str, alive: bool) -> None:
    """An exited process still open by a handle is dead; another user's or an elevated process (access denied) runs."""
    kernel32 = _Kernel32(state)
    monkeypatch.setattr(ctypes, "WinDLL", lambda name, use_last_error=False: kernel32, raising=False)
    monkeypatch.setattr(ctypes, "get_last_error", lambda: 5 if state == "denied" else 87, raising=False)
    assert leftovers._windows_pid_alive(DEAD) is alive
    assert kernel32.closed == (state in ("running", "exited"))


def test_files_moved_aside_together_are_put_back_together(tmp_path: Path) -> None:
    """Killed after the new classes.tif was moved in but before the new confidence.tif: the next run puts both old
    files back (the new map beside the old confidence would not match); a complete swap leaves the new pair."""
    token = "89abcdef"
    (tmp_path / "classes.tif").write_bytes(b"new classes")  # placed; confidence.tif still missing
    (tmp_path / f".classes.tif.{DEAD}.{token}.old").write_bytes(b"old classes")
    (tmp_path / f".confidence.tif.{DEAD}.{token}.old").write_bytes(b"old confidence")
    remove_stale(tmp_path / "classes.tif")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {
        "classes.tif": b"old classes",
        "confidence.tif": b"old confidence",
    }
    (tmp_path / f".classes.tif.{DEAD}.{token}.old").write_bytes(b"old classes")  # both new files placed: kept
    (tmp_path / f".confidence.tif.{DEAD}.{token}.old").write_bytes(b"old confidence")
    (tmp_path / "classes.tif").write_bytes(b"new classes")
    (tmp_path / "confidence.tif").write_bytes(b"new confidence")
    remove_stale(tmp_path / "classes.tif")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {
        "classes.tif": b"new classes",
        "confidence.tif": b"new confidence",
    }
