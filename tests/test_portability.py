"""What differs on Windows and macOS, checked where Linux can show it: output encodings, case-insensitive disks,
file managers' clutter files, file:// URLs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geoseg.core.errors import OptionError
from geoseg.inference.checks import check_outputs
from geoseg.io.ownership import RUN_MARKS, check_contents
from geoseg.io.stac import _href
from geoseg.training.rundir import check_run_dir
from tests.helpers import write_raster

ROOT = Path(__file__).resolve().parents[1]


def test_names_the_output_encoding_lacks_are_escaped_not_a_crash(tmp_path: Path) -> None:
    """Windows writes redirected output in cp1252: a band named "łąka" ended info with a UnicodeEncodeError."""
    import rasterio

    scene = write_raster(tmp_path / "meadow.tif", np.zeros((1, 8, 8), np.uint16))
    with rasterio.open(scene, "r+") as ds:
        ds.set_band_description(1, "łąka")
    env = dict(os.environ, PYTHONIOENCODING="cp1252", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "geoseg", "info", str(scene)], capture_output=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert b"\\u0142\\u0105ka" in done.stdout  # escaped, every other line as it was
    assert b"UnicodeEncodeError" not in done.stderr


def test_two_outputs_differing_only_in_case_are_one_file(tmp_path: Path) -> None:
    """On macOS's and Windows' disks classes.tif and Classes.tif are one file: the confidence would replace the map."""
    outputs = {"classes": tmp_path / "classes.tif", "confidence": tmp_path / "Classes.tif"}
    with pytest.raises(OptionError, match="name the same file"):
        check_outputs(outputs, [], overwrite=True)


def test_a_file_managers_clutter_does_not_make_a_folder_someone_elses(tmp_path: Path) -> None:
    """Finder's .DS_Store and Explorer's Thumbs.db appear in any folder a user looked at."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".DS_Store").write_bytes(b"\0")
    (empty / "._x").write_bytes(b"\0")
    check_contents(empty, [".DS_Store", "._x"], overwrite=False, marks=RUN_MARKS)  # still empty: may be written
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"geoseg_version": "0.2.0"}))
    (run / "Thumbs.db").write_bytes(b"\0")
    check_contents(run, ["run.json", "Thumbs.db"], overwrite=True, marks=RUN_MARKS)  # geoseg's own: replaced
    (run / "notes.txt").write_text("mine")
    with pytest.raises(OSError, match=r"did not write \(notes.txt\)"):
        check_contents(run, ["run.json", "Thumbs.db", "notes.txt"], overwrite=True, marks=RUN_MARKS)
    train = tmp_path / "train"
    train.mkdir()
    (train / ".DS_Store").write_bytes(b"\0")
    assert check_run_dir(train, resume=False) is False  # a new run may start there
    (train / "notes.txt").write_text("mine")
    with pytest.raises(OSError, match=r"not empty \(notes.txt;"):
        check_run_dir(train, resume=False)


def test_file_urls_in_stac_items_are_decoded() -> None:
    assert _href("file:///data/my%20scene/B04.tif", "/items/a.json") == "/data/my scene/B04.tif"
    assert _href("file://localhost/data/B04.tif", "/items/a.json") == "/data/B04.tif"


def test_a_connection_strings_file_with_a_colon_is_found(tmp_path: Path) -> None:
    """``GTIFF_DIR:1:C:\\data\\a.tif`` on Windows: the file's own ":" (a drive letter) split it in two, so an output
    naming the scene's file was not refused. A file name with ":" shows the same on Linux."""
    from geoseg.io.scene_files import scene_files

    scene = write_raster(tmp_path / "C:a.tif", np.zeros((1, 8, 8), np.uint16))
    assert str(scene) in scene_files(f"GTIFF_DIR:1:{scene}")


def test_closing_stdin_stops_geoseg_as_ctrl_c_when_asked(tmp_path: Path) -> None:
    """The QGIS plugin's cancel on Windows (no console for Ctrl+Break): geoseg started with GEOSEG_STOP_WITH_STDIN=1
    stops when its stdin closes, removes its temporary files and leaves no output."""
    import time

    sample = ROOT / "data_samples" / "brandenburg_s2.tif"
    out = tmp_path / "classes.tif"
    env = dict(os.environ, PYTHONPATH=str(ROOT), GEOSEG_STOP_WITH_STDIN="1")
    command = [sys.executable, "-m", "geoseg", "predict", str(sample), "-m", "default", "-o", str(out), "--progress", "json"]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path) as proc:
        assert proc.stdin is not None and proc.stderr is not None
        started = time.monotonic()
        for line in proc.stderr:  # the first progress line: predicting has begun
            if line.startswith('{"stage"'):
                break
        proc.stdin.close()
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 130, rest
    assert "geoseg: interrupted" in rest and time.monotonic() - started < 60
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no map, no temporary file


def test_scene_names_one_folder_on_macos_are_refused_as_twins(tmp_path: Path) -> None:
    """ "café" typed (NFC) and as macOS spells file names (NFD) are one OUTDIR/café on macOS: the second scene would
    replace the first's outputs."""
    from geoseg.core.errors import InputError
    from geoseg.flows.batch import expand_inputs

    composed, decomposed = "caf\u00e9", "cafe\u0301"
    scenes = [write_raster(tmp_path / f"{name}.tif", np.zeros((1, 8, 8), np.uint16)) for name in (composed, decomposed)]
    if len(list(tmp_path.iterdir())) < 2:
        pytest.skip("this file system keeps one spelling of the name")
    with pytest.raises(InputError, match="would both write OUTDIR"):
        expand_inputs([str(s) for s in scenes])


def test_a_claim_from_another_machine_name_is_named_with_its_file(tmp_path: Path) -> None:
    """macOS renames itself on another network: a killed run's claim then looks like another machine's and is never
    taken for stale, so the refusal names the claim file to delete when no geoseg runs there."""
    from geoseg.io.outputs import LOCK, atomic_folder

    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK).write_text("4242 MacBook-old.local", encoding="utf-8")
    with pytest.raises(OSError) as refused, atomic_folder(out):
        pass
    message = str(refused.value)
    assert "(process 4242 on MacBook-old.local)" in message and message.endswith(f"delete {out / LOCK}")


def test_a_failed_write_closes_the_polygon_stream_at_once() -> None:
    """The polygon stream holds the class map open: on Windows a temporary folder holding an open file stays behind,
    so an error closes the stream before the folder is cleaned up (not when the garbage collector gets to it)."""
    from geoseg.polygonize.api import write_batches

    closed = []

    def stream():
        try:
            yield from range(3)
        finally:
            closed.append(True)

    class Failing:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, frame):
            raise OSError("disk full")

    batches = stream()  # the caller still holds it, as run's and vectorize's code does
    with pytest.raises(OSError, match="disk full"):
        write_batches(batches, [Failing()])  # type: ignore[list-item]
    assert closed == [True]
