"""``geoseg train --resume``: a run stopped after an epoch continues bit for bit, and one given more epochs trains
on the longer run's schedule; what ``geoseg train`` prints with ``-q`` and in a log file."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

import geoseg
from geoseg.training.schedule import lr_factor
from tests.helpers import run
from tests.test_train import learnable_scene, small_config

TIMING = ("seconds", "train_seconds", "data_wait_share")
"""history.csv's columns of wall-clock time: the only ones two runs of one config may differ in."""


def dropout_config(image: Path, labels: Path, epochs: int) -> dict:
    """A small FPN, whose decoder has dropout (torch's generator drawn in every training step)."""
    cfg = small_config(image, labels, epochs=epochs, samples_per_epoch=8)
    cfg["model"] = {
        "arch": "fpn",
        "encoder": "resnet18",
        "chip_size": 64,
        "overlap": "16px",
        "params": {"decoder_pyramid_channels": 32, "decoder_segmentation_channels": 32},
    }
    return cfg


def history(run_dir: Path) -> list[dict[str, str]]:
    """history.csv's rows without the timing columns."""
    with (run_dir / "history.csv").open() as fh:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(fh)]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return geoseg.load_model(path).net.state_dict()


def stop_after(epoch: int):
    def on_epoch(row: dict) -> None:
        if row["epoch"] == epoch:
            raise KeyboardInterrupt  # like Ctrl-C once the epoch is written

    return on_epoch


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    image, labels, _ = learnable_scene(tmp_path_factory.mktemp("resume"))
    return image, labels


@pytest.mark.slow
def test_resume_continues_bit_for_bit_with_dropout(scene, tmp_path: Path) -> None:
    """Stopped after epoch 1 of 2 and resumed, a model with dropout ends with the uninterrupted run's history and
    weights, exactly; also when the interrupt fell between last.pt and resume.pt (epoch 1's resume.pt beside epoch
    2's last.pt)."""
    image, labels = scene
    whole = geoseg.train(dropout_config(image, labels, 2), tmp_path / "whole")
    assert len(whole.history) == 2
    with pytest.raises(KeyboardInterrupt):
        geoseg.train(dropout_config(image, labels, 2), tmp_path / "cut", on_epoch=stop_after(1))
    kept = tmp_path / "resume-epoch1.pt"
    shutil.copy(tmp_path / "cut" / "resume.pt", kept)
    geoseg.train(dropout_config(image, labels, 2), tmp_path / "cut", resume=True)
    assert history(tmp_path / "cut") == history(tmp_path / "whole")
    a, b = weights(tmp_path / "whole" / "last.pt"), weights(tmp_path / "cut" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # killed after writing epoch 2's last.pt, before its resume.pt: the resume starts again from epoch 1's state
    shutil.copy(kept, tmp_path / "cut" / "resume.pt")
    geoseg.train(dropout_config(image, labels, 2), tmp_path / "cut", resume=True)
    assert history(tmp_path / "cut") == history(tmp_path / "whole")
    b = weights(tmp_path / "cut" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_resume_with_more_epochs_trains_on_the_longer_schedule(scene, tmp_path: Path) -> None:
    """A finished 2-epoch run resumed with 4 epochs trains epochs 3 and 4 at the 4-epoch schedule's rates (not at
    the zero the 2-epoch schedule ended on): its trainable weights move."""
    image, labels = scene
    geoseg.train(small_config(image, labels, epochs=2, samples_per_epoch=16), tmp_path / "run")
    before = weights(tmp_path / "run" / "last.pt")
    result = geoseg.train(small_config(image, labels, epochs=4, samples_per_epoch=16), tmp_path / "run", resume=True)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    # a row's lr is the rate after the epoch (the next epoch's): 2-epoch schedule for rows 1-2, 4-epoch for 3-4
    expected = [0.01 * lr_factor(2, 2), 0.0, 0.01 * lr_factor(4, 4), 0.0]
    assert [float(r["lr"]) for r in history(tmp_path / "run")] == pytest.approx(expected, abs=1e-8)
    assert float(history(tmp_path / "run")[2]["lr"]) > 0
    after = weights(tmp_path / "run" / "last.pt")
    net = geoseg.load_model(tmp_path / "run" / "last.pt").net
    net(torch.zeros(1, 3, 64, 64)).sum().backward()
    trainable = {name for name, p in net.named_parameters() if p.grad is not None}  # not the layers encoder_depth cuts
    moved = [k for k in trainable if not torch.equal(before[k], after[k])]
    assert len(moved) == len(trainable), f"{len(trainable) - len(moved)} of {len(trainable)} parameters did not train"


@pytest.mark.slow
def test_train_quiet_prints_nothing_and_logs_progress_lines_otherwise(scene, tmp_path: Path, runner) -> None:
    """-q: only errors, so no epoch or best-epoch line. Without it, off a terminal (``--progress auto``): the
    epoch's progress lines every 10% of its steps, one summary line per epoch and the best epoch."""
    image, labels = scene
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps(small_config(image, labels, epochs=1, samples_per_epoch=16, batch_size=4)))
    quiet = run(runner, "train", config, "-o", tmp_path / "quiet", "-q")
    assert quiet.exit_code == 0, quiet.output
    assert quiet.output == ""
    shown = run(runner, "train", config, "-o", tmp_path / "shown")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    steps = [line for line in lines if line.startswith("geoseg: epoch 1/1: ")]
    assert steps and steps[-1] == "geoseg: epoch 1/1: 100% (4/4 steps)"
    assert sum(line.startswith("geoseg: epoch 1, loss ") for line in lines) == 1
    assert lines[-1].startswith("geoseg: best epoch 1 ")


def test_a_run_stopped_before_its_first_epoch_starts_again(tmp_path: Path) -> None:
    """A folder holding only config.yaml (Ctrl-C before the first epoch was saved) is no dead end."""
    from geoseg.core.errors import OutputError
    from geoseg.training.rundir import check_run_dir

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("{}")
    assert check_run_dir(run_dir, resume=True) is False  # --resume: starts from the first epoch
    assert check_run_dir(run_dir, resume=False) is False  # the same command again
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="holds no resume.pt"):
        check_run_dir(run_dir, resume=True)
    with pytest.raises(OutputError, match="not empty"):
        check_run_dir(run_dir, resume=False)
    (run_dir / "resume.pt").write_bytes(b"")
    assert check_run_dir(run_dir, resume=True) is True
