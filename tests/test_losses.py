"""The loss registry: every loss skips unlabeled pixels, the config takes its choices from the registry, and a
loss added there trains (lovasz, from segmentation_models_pytorch)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import geoseg
from geoseg.core.classes import IGNORE_INDEX
from geoseg.core.errors import InputError
from geoseg.training.losses import LOSSES, LossContext, make_loss
from tests.test_train import learnable_scene, small_config


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=generator, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8), generator=generator)
    target[:, :4] = IGNORE_INDEX
    return logits, target


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_registered_loss_ignores_unlabeled_pixels(name: str) -> None:
    logits, target = _batch()
    loss = make_loss({name: 1.0}, [1.0, 2.0, 0.5])(logits, target)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert float(logits.grad[:, :, :4].abs().sum()) == 0.0
    assert float(logits.grad[:, :, 4:].abs().sum()) > 0.0
    logits.grad = None
    empty = make_loss({name: 1.0})(logits, torch.full_like(target, IGNORE_INDEX))
    empty.backward()
    assert float(empty.detach()) == 0.0 and float(logits.grad.abs().sum()) == 0.0


def test_lovasz_is_smps_multiclass_lovasz_with_the_ignore_index() -> None:
    from geoseg._compat import import_smp

    import_smp()
    from segmentation_models_pytorch.losses import LovaszLoss

    logits, target = _batch()
    with torch.no_grad():
        ours = make_loss({"lovasz": 1.0})(logits, target)
        theirs = LovaszLoss("multiclass")(logits[:, :, 4:], target[:, 4:])  # the labeled rows alone
    valid = target != IGNORE_INDEX
    assert valid[:, 4:].all() and float(ours) == pytest.approx(float(theirs), rel=1e-6)


def test_weighted_sum_adds_the_named_losses() -> None:
    logits, target = _batch()
    with torch.no_grad():
        each = {name: float(make_loss({name: 1.0})(logits, target)) for name in LOSSES}
        mixed = float(make_loss({"ce": 1.0, "dice": 0.5, "lovasz": 2.0})(logits, target))
    assert mixed == pytest.approx(each["ce"] + 0.5 * each["dice"] + 2.0 * each["lovasz"], rel=1e-6)


def test_a_loss_added_to_the_registry_is_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    from geoseg.training.config import parse_config

    def mean_logit(ctx: LossContext):
        return lambda logits, target: logits.mean()

    monkeypatch.setitem(LOSSES, "mean_logit", mean_logit)
    cfg = parse_config({"data": {"chips": "c"}, "train": {"loss": {"mean_logit": 1.0}}}, Path("."))
    assert cfg["train"]["loss"] == {"mean_logit": 1.0}
    logits, target = _batch()
    with torch.no_grad():
        assert float(make_loss(cfg["train"]["loss"])(logits, target)) == pytest.approx(float(logits.mean()))


def test_unknown_loss_names_the_registry(tmp_path: Path) -> None:
    from geoseg.training.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=r"'lovaz' is not one of ce, dice, focal, lovasz: did you mean 'lovasz'\?"):
        parse_config({"data": {"chips": "c"}, "train": {"loss": "lovaz"}}, tmp_path)
    with pytest.raises(InputError, match="'hinge' is not one of ce, dice, focal, lovasz"):
        make_loss({"hinge": 1.0})


def test_lovasz_trains_one_epoch(tmp_path: Path) -> None:
    image, labels, _ = learnable_scene(tmp_path)
    cfg = small_config(image, labels, epochs=1, samples_per_epoch=16, loss={"lovasz": 1.0})
    result = geoseg.train(cfg, tmp_path / "run")
    row = result.history[0]
    assert row["chips"] == 16 and 0.0 < row["train_loss"] < 2.0 and row["val_loss"] is not None
    assert geoseg.load_model(result.model_path).card.num_classes == 3
