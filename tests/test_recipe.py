"""The training recipe's parts: learning-rate warm-up and cosine schedule, radiometric and scale jitter, their keys."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from geoseg.core.classes import IGNORE_INDEX
from geoseg.training.augment import augment, radiometric, scale_jitter
from geoseg.training.schedule import lr_factor
from geoseg.training.schema import ConfigError, parse_config
from tests.helpers import run

MINIMAL = {"data": {"chips": "chips"}}


def _rates(epochs: int, warmup: int, lr: float = 0.01) -> list[float]:
    """The learning rate each epoch trains at, as the epoch loop sets it (``lr * lr_factor``)."""
    return [lr * lr_factor(e, epochs, warmup) for e in range(1, epochs + 1)]


def test_warm_up_rises_linearly_to_the_base_rate_then_decays_by_cosine() -> None:
    rates = _rates(epochs=20, warmup=4)
    assert rates[:5] == pytest.approx([0.002, 0.004, 0.006, 0.008, 0.01])  # epochs 1-4 warm up, epoch 5 at lr
    assert rates[5] == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi / 16)))
    assert all(a > b for a, b in zip(rates[4:], rates[5:]))  # decays every epoch after the warm-up
    assert 0 < rates[-1] < 0.0002  # the last epoch, close to zero


def test_no_warm_up_is_torchs_cosine_schedule_step_for_step() -> None:
    """Without a warm-up the closed form is ``CosineAnnealingLR(T_max=E)`` stepped once after each epoch."""
    opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    torch_rates = []
    for _ in range(10):
        torch_rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert torch_rates[0] == 0.01
    assert _rates(epochs=10, warmup=0) == pytest.approx(torch_rates)


def _stripes(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Two bands of random vertical stripes (0 or 1, and twice that) and labels that threshold the first band."""
    columns = np.kron(rng.integers(0, 2, size // 4), np.ones(4)).astype(np.float32)
    band = np.broadcast_to(columns, (size, size))
    labels = (band > 0.5).astype(np.uint8)
    return np.stack([band, 2 * band]), labels


def test_scale_jitter_keeps_labels_on_their_pixels() -> None:
    rng = np.random.default_rng(1)
    for factor in (0.6, 0.75, 0.9, 1.1, 1.3, 1.5):
        data, labels = _stripes(rng)
        d, lab = scale_jitter(data, labels, factor, rng)
        scored = (lab != IGNORE_INDEX) & (np.abs(d[0] - 0.5) > 1e-6)  # exactly halfway: either label is right
        assert scored.mean() > 0.3
        assert ((d[0] > 0.5) == (lab == 1))[scored].all(), factor
        assert np.allclose(d[1], 2 * d[0], atol=1e-5)  # every band resampled the same way
        if factor < 1:  # zoomed out: the rim is padding, zero (the band mean) and ignored
            n = round(64 * factor)
            assert (lab == IGNORE_INDEX).sum() == 64 * 64 - n * n
            assert (d[:, lab == IGNORE_INDEX] == 0).all()
        else:
            assert (lab != IGNORE_INDEX).all()


def test_full_augmentation_keeps_labels_aligned() -> None:
    rng = np.random.default_rng(2)
    for _ in range(10):
        data, labels = _stripes(rng)
        d, lab = augment(data, labels, rng, flips=True, rot90=True, scale=0.3, brightness=0.0)
        scored = (lab != IGNORE_INDEX) & (np.abs(d[0] - 0.5) > 1e-6)
        assert ((d[0] > 0.5) == (lab == 1))[scored].all()


def test_gain_scales_raw_values_about_zero() -> None:
    rng = np.random.default_rng(3)
    mean, std = np.array([1450.0, 1100.0, 2000.0]), np.array([150.0, 270.0, 560.0])
    raw = rng.uniform(500, 4000, (3, 16, 16))
    z = ((raw - mean[:, None, None]) / std[:, None, None]).astype(np.float32)
    gains = []
    for _ in range(50):
        out = radiometric(z, rng, gain=0.2, band_gain=0.0, offset=0.0, noise=0.0, level=mean / std)
        ratio = (out * std[:, None, None] + mean[:, None, None]) / raw  # the raw values the model now sees
        assert np.allclose(ratio, ratio.flat[0], rtol=1e-4)  # one factor for every band and pixel
        gains.append(ratio.flat[0])
    assert 0.8 <= min(gains) < 0.85 and 1.15 < max(gains) <= 1.2


def test_band_gain_offset_and_noise_change_statistics_as_configured() -> None:
    rng = np.random.default_rng(4)
    z = np.zeros((4, 64, 64), np.float32)
    level = np.full(4, 5.0)
    ratios = []
    for _ in range(50):
        out = radiometric(z, rng, gain=0.0, band_gain=0.1, offset=0.0, noise=0.0, level=level)
        ratios.append((out[:, 0, 0] + 5.0) / 5.0)  # raw level of each band, relative to before
    ratios_a = np.array(ratios)
    assert ratios_a.min() >= 0.9 and ratios_a.max() <= 1.1 and ratios_a.std(axis=1).mean() > 0.02  # per band
    shifts = np.array([radiometric(z, rng, 0.0, 0.0, 0.3, 0.0)[:, 0, 0] for _ in range(200)])
    assert np.abs(shifts).max() <= 0.3 and shifts.std() == pytest.approx(0.3 / math.sqrt(3), rel=0.15)
    noisy = radiometric(z, rng, 0.0, 0.0, 0.0, 0.05)
    assert abs(float(noisy.mean())) < 0.005 and float(noisy.std()) == pytest.approx(0.05, rel=0.05)


def test_radiometric_jitter_is_off_unless_configured() -> None:
    data, labels = _stripes(np.random.default_rng(5))
    rng, fresh = np.random.default_rng(6), np.random.default_rng(6)
    d, lab = augment(data, labels, rng, False, False, 0.0, 0.0, gain=0.0, band_gain=0.0, offset=0.0, noise=0.0, level=None)
    assert (d == data).all() and (lab == labels).all()
    assert rng.random() == fresh.random()  # nothing drawn: configs without the keys train as before


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("augment", {"gain": 0.8}, "config key augment.gain: must lie in [0.0, 0.5], got 0.8"),
        ("augment", {"band_gain": -0.1}, "config key augment.band_gain: must lie in [0.0, 0.5], got -0.1"),
        ("augment", {"offset": "big"}, "config key augment.offset: must be an integer or a number, got 'big'"),
        ("augment", {"noise": 2}, "config key augment.noise: must lie in [0.0, 1.0], got 2"),
        ("augment", {"gian": 0.1}, "config key augment.gian is not known: did you mean 'gain'?"),
        ("train", {"warmup_epochs": 1.5}, "config key train.warmup_epochs: must be an integer, got 1.5"),
        ("train", {"warmup_epochs": -1}, "config key train.warmup_epochs: must lie in [0, 100000], got -1"),
        ("train", {"warmup_epochs": 30}, "config key train.warmup_epochs: must be fewer than train.epochs (30), got 30"),
        ("train", {"warmup": 3}, "config key train.warmup is not known: did you mean 'warmup_epochs'?"),
    ],
)
def test_recipe_keys_are_checked(section: str, values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, section: values}, Path("."))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_recipe_keys_default_to_the_old_recipe() -> None:
    cfg = parse_config(MINIMAL, Path("."))
    assert cfg["train"]["warmup_epochs"] == 0
    assert {k: cfg["augment"][k] for k in ("scale", "brightness", "gain", "band_gain", "offset", "noise")} == dict.fromkeys(
        ("scale", "brightness", "gain", "band_gain", "offset", "noise"), 0.0
    )


def test_bad_recipe_key_is_one_line_on_the_command_line(tmp_path: Path, runner) -> None:
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**MINIMAL, "train": {"epochs": 5, "warmup_epochs": 5}}))
    result = run(runner, "train", tmp_path / "c.yaml", "-o", tmp_path / "run")
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    assert "train.warmup_epochs: must be fewer than train.epochs (5), got 5: e.g. 3 (0: no warm-up)" in result.output


def test_a_run_of_before_the_recipe_keys_resumes(tmp_path: Path) -> None:
    from geoseg.training.rundir import comparable

    cfg = parse_config(MINIMAL, Path("."))
    old = {
        s: {k: v for k, v in keys.items() if k not in ("gain", "band_gain", "offset", "noise", "warmup_epochs")}
        if isinstance(keys, dict)
        else keys
        for s, keys in cfg.items()
    }
    assert comparable(old) == comparable(cfg)
    cfg["train"]["warmup_epochs"] = 2
    assert comparable(old) != comparable(cfg)


@pytest.mark.slow
def test_training_follows_the_warm_up_deterministically_and_resumes_exactly(tmp_path: Path) -> None:
    import geoseg
    from tests.test_train import learnable_scene, small_config

    image, labels, _ = learnable_scene(tmp_path)

    def config() -> dict:
        cfg = small_config(image, labels, epochs=4, warmup_epochs=2, samples_per_epoch=8)
        cfg["augment"] = {"gain": 0.2, "band_gain": 0.05, "offset": 0.1, "noise": 0.03, "scale": 0.2}
        return cfg

    whole = geoseg.train(config(), tmp_path / "a")
    # a row's lr is the rate after that epoch's scheduler step: the next epoch's
    assert [row["lr"] for row in whole.history] == pytest.approx([0.01 * lr_factor(e, 4, 2) for e in (2, 3, 4, 5)], abs=1e-8)

    def interrupt(row: dict) -> None:
        if row["epoch"] == 2:
            raise KeyboardInterrupt  # like Ctrl-C after the warm-up

    with pytest.raises(KeyboardInterrupt):
        geoseg.train(config(), tmp_path / "b", on_epoch=interrupt)
    resumed = geoseg.train(config(), tmp_path / "b", resume=True)
    assert [r["lr"] for r in resumed.history] == [r["lr"] for r in whole.history]
    assert [r["train_loss"] for r in resumed.history] == pytest.approx([r["train_loss"] for r in whole.history], rel=1e-5)
    a = geoseg.load_model(tmp_path / "a" / "last.pt").state_dict()
    b = geoseg.load_model(tmp_path / "b" / "last.pt").state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
