"""Output folders a user put files into are never replaced: a chip folder like a run folder, the refusal naming
what geoseg did not write; an existing output folder that cannot be written is one line before any work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from geoseg.core.errors import OutputError
from geoseg.io.outputs import check_outdir
from tests.helpers import random_scene, run, write_raster


@pytest.fixture
def chips(runner, tmp_path: Path) -> Path:
    scene = write_raster(tmp_path / "a.tif", random_scene((4, 64, 64)))
    out = tmp_path / "chips"
    assert run(runner, "tile", scene, "-o", out, "--chip-size", "32", "-q").exit_code == 0
    return out


def test_a_chip_folder_holding_user_files_is_not_replaced(runner, chips: Path) -> None:
    scene = chips.parent / "a.tif"
    (chips / "notes.txt").write_text("mine")
    (chips / "sub").mkdir()
    result = run(runner, "tile", scene, "-o", chips, "--chip-size", "32", "--overwrite")
    assert result.exit_code == 1 and "holds files geoseg did not write (notes.txt, sub)" in result.stderr
    assert (chips / "notes.txt").read_text() == "mine" and (chips / "sub").is_dir()
    (chips / "notes.txt").unlink()
    (chips / "sub").rmdir()
    (chips / "images" / "keep.csv").write_text("mine")  # inside the chips' folder: looked into too
    result = run(runner, "tile", scene, "-o", chips, "--chip-size", "32", "--overwrite")
    assert result.exit_code == 1 and "(images/keep.csv)" in result.stderr and (chips / "images" / "keep.csv").exists()
    (chips / "images" / "keep.csv").unlink()
    (chips / "masks" / "my_own_map.tif").write_bytes(b"mine")  # a .tif that is no chip of tile's
    result = run(runner, "tile", scene, "-o", chips, "--chip-size", "32", "--overwrite")
    assert result.exit_code == 1 and "(masks/my_own_map.tif)" in result.stderr
    (chips / "masks" / "my_own_map.tif").unlink()
    chip = next((chips / "images").glob("*_r0000_c0000.tif"))
    chip.with_name(chip.name + ".aux.xml").write_text("<PAMDataset/>")  # QGIS's statistics of a chip: geoseg's
    assert run(runner, "tile", scene, "-o", chips, "--chip-size", "32", "--overwrite", "-q").exit_code == 0


def test_the_refusal_names_the_files_geoseg_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text('{"geoseg_version": "0.2.0"}')
    for name in ("areas.csv", "classes.qml", "classes.tif", "my_digitizing.gpkg"):
        (out / name).write_bytes(b"")
    with pytest.raises(OutputError, match=r"holds files geoseg did not write \(my_digitizing.gpkg\)"):
        check_outdir(out, [], overwrite=True)


def test_an_existing_folder_that_cannot_be_written_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As root, permissions do not stop a write (an immutable folder does): the folder is tried, not its mode bits."""
    out = tmp_path / "locked"
    out.mkdir()
    real_open = os.open

    def refuse_inside(path: object, *args: object) -> int:
        if Path(str(path)).parent == out:
            raise PermissionError(1, "Operation not permitted")
        return real_open(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse_inside)
    with pytest.raises(OutputError, match=r"output folder .*locked is not writable \(Operation not permitted\)"):
        check_outdir(out, [], overwrite=False)
    from geoseg.io.outputs import atomic_folder

    with pytest.raises(OutputError, match="is not writable"), atomic_folder(out, False):
        pass
    assert list(out.iterdir()) == []


def test_a_geoseg_output_inside_a_run_folder_is_named_as_such(tmp_path: Path) -> None:
    """An evaluation report written into a run folder is geoseg's, but --overwrite of the run must not delete it."""
    out = tmp_path / "results"
    (out / "evaluation").mkdir(parents=True)
    (out / "run.json").write_text('{"geoseg_version": "0.2.0"}')
    (out / "evaluation" / "metrics.json").write_text('{"geoseg_version": "0.2.0"}')
    with pytest.raises(OutputError, match=r"holds another geoseg output \(evaluation/metrics.json\): move it out"):
        check_outdir(out, [], overwrite=True)
