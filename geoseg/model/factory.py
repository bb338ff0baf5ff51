"""Build smp models from a model card, and load and save them.

Models come only from ``smp.create_model``; the :class:`Model` wrapper keeps
the card beside the network so a model always knows its bands, classes,
normalization and chip size.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geoseg._compat import import_smp
from geoseg.core.classes import ClassInfo, class_colors
from geoseg.core.errors import ChipSizeError, ModelError
from geoseg.core.version import __version__
from geoseg.model.card import ModelCard, check_chip_size, generic_band_names, valid_chip_sizes
from geoseg.model.checkpoint import read_checkpoint, write_checkpoint
from geoseg.model.validate import DOWNLOAD_PARAMS, check_encoder_name, show

__all__ = ["Model", "build_network", "create_model", "load_model", "unknown_params", "valid_chip_sizes"]


class Model(torch.nn.Module):
    """An smp network together with its :class:`ModelCard`.

    Call it like the network (normalized ``(B, C, H, W)`` float tensor in,
    logits ``(B, K, H, W)`` out); :meth:`normalize` prepares raw band values.
    """

    def __init__(self, card: ModelCard, net: torch.nn.Module) -> None:
        super().__init__()
        self.card = card
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K, H, W)`` of normalized chips ``(B, C, H, W)``."""
        return self.net(x)

    @property
    def output_stride(self) -> int:
        """Chip sizes must be multiples of this."""
        return _output_stride(self.net)

    def normalize(self, array: np.ndarray) -> np.ndarray:
        """Normalize raw band values ``(C, H, W)`` in place with the card's mean and std."""
        return self.card.normalize(array)

    def save(self, path: str | os.PathLike, half: bool = False) -> Path:
        """Write the model (card and weights) to a checkpoint file.

        Example:
            >>> model = create_model(bands=["B04", "B08"], classes=["land", "water"], encoder="resnet18")
            >>> model.save("/tmp/doc_model.pt").name
            'doc_model.pt'
        """
        return write_checkpoint(Path(path), self.card, self.net.state_dict(), half=half)


def _output_stride(net: torch.nn.Module) -> int:
    # Required for every architecture, also those (Unet) that would resize inside:
    # chips on the stride keep predictions at chip edges as good as inside.
    return int(getattr(net.encoder, "output_stride", 32))


def _choice_error(kind: str, value: str, choices: Sequence[str], source: str | None = None) -> ModelError:
    close = difflib.get_close_matches(value, choices, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"choose one of {', '.join(choices)}"
    where = f"{source}: card field {kind} is {value!r}, which smp does not know: " if source else f"unknown {kind} {value!r}: "
    return ModelError(f"{where}{hint}")


def _check_encoder(smp: Any, encoder: str, source: str | None) -> None:
    """Only encoders smp (or timm, for ``tu-``) has in its local registry: nothing is looked up on a hub."""
    import timm

    check_encoder_name(encoder, source or "create_model")
    if encoder.startswith("tu-"):
        if not timm.is_model(encoder[3:]):
            raise _choice_error("encoder", encoder, [f"tu-{n}" for n in timm.list_models()], source)
        return
    encoders = smp.encoders.get_encoder_names()
    if encoder not in encoders:
        raise _choice_error("encoder", encoder, encoders, source)


SET_BY_GEOSEG = ("encoder_name", "encoder_weights", "in_channels", "classes")
"""Arguments of ``smp.create_model`` that geoseg sets from the card (encoder, weights, bands, classes)."""


def _timm_encoder(smp: Any, encoder: str) -> bool:
    """True for encoders that smp builds with timm, which takes extra keyword arguments (``tu-`` and ``timm-``)."""
    equivalent = getattr(smp.encoders, "is_equivalent_to_timm_universal", None)
    return encoder.startswith("tu-") or bool(equivalent is not None and equivalent(encoder))


def _arch_params(model_class: Any) -> list[str]:
    """The parameters an smp architecture's constructor names (and deprecated ones it still reads from ``kwargs``)."""
    import inspect
    import re

    names = [
        n
        for n, p in inspect.signature(model_class.__init__).parameters.items()
        if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    try:
        names += re.findall(r"kwargs\.pop\(\s*[\"'](\w+)[\"']", inspect.getsource(model_class.__init__))
    except (OSError, TypeError):  # no source (a frozen install): the signature alone
        pass
    return list(dict.fromkeys(names))


def unknown_params(arch: str, encoder: str, params: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The keys of ``params`` that smp's ``arch`` would not use, and the names it takes (besides those geoseg sets).

    smp hands unknown keyword arguments to the encoder, where only timm encoders (``tu-``) use them: for other
    encoders a misspelt parameter would be ignored. Download parameters are checked elsewhere; an unknown ``arch``
    gives nothing here (building it names the valid ones).

    Example:
        >>> unknown_params("unet", "resnet18", {"decoder_chanels": [16, 8]})[0]
        ['decoder_chanels']
        >>> "decoder_channels" in unknown_params("unet", "resnet18", {})[1]
        True
    """
    smp = import_smp()
    model_class = smp.MODEL_ARCHITECTURES_MAPPING.get(arch.lower())
    if model_class is None:
        return [], []
    valid = [n for n in _arch_params(model_class) if n not in SET_BY_GEOSEG]
    if _timm_encoder(smp, encoder):
        return [], valid
    return [k for k in params if k not in valid and k not in DOWNLOAD_PARAMS], valid


def build_network(
    card: ModelCard,
    encoder_weights: str | os.PathLike | None = None,
    source: str | None = None,
    device: str | None = None,
) -> torch.nn.Module:
    """Create the smp network a card describes (``smp.create_model``), weights random or given.

    ``source`` names the model file in errors (its card may not ask for
    downloads); ``device="meta"`` builds the shapes only, without memory.

    Example:
        >>> card = create_model(bands=3, classes=2, chip_size=64, encoder_depth=3, decoder_channels=(16, 8, 8)).card
        >>> type(build_network(card, device="meta")).__name__
        'Unet'
    """
    smp = import_smp()
    archs = list(smp.MODEL_ARCHITECTURES_MAPPING)
    if card.arch.lower() not in archs:
        raise _choice_error("architecture" if source is None else "arch", card.arch, archs, source)
    _check_encoder(smp, card.encoder, source)
    local = encoder_weights is not None and Path(encoder_weights).suffix in {".pt", ".pth", ".safetensors", ".bin"}
    smp_weights = None if local or encoder_weights is None else str(encoder_weights)
    params = {k: v for k, v in card.params.items() if k not in DOWNLOAD_PARAMS}  # only null ones pass validation
    name = f"{source}: " if source else ""
    unknown, valid = unknown_params(card.arch, card.encoder, params) if source is None else ([], [])
    if unknown:  # a new model only: a model file keeps loading as it was built (smp ignored the key then too)
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ModelError(f"smp's {card.arch} takes no parameter {unknown[0]!r}: {hint}valid ones are {', '.join(valid)}")
    try:
        with torch.device(device) if device else contextlib.nullcontext():
            net = smp.create_model(
                card.arch,
                encoder_name=card.encoder,
                encoder_weights=smp_weights,
                in_channels=card.num_bands,
                classes=card.num_classes,
                **params,
            )
    except OSError as exc:
        raise ModelError(
            f"encoder weights {encoder_weights!r} could not be fetched ({exc}); "
            "download them yourself and pass the local file path"
        ) from None
    except Exception as exc:  # noqa: BLE001 - smp raises many types for parameters it cannot use
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{name}smp cannot build {card.arch}/{card.encoder} with {show(card.params, 80)}: {first}") from None
    if local and encoder_weights is not None:
        _load_encoder_weights(net, Path(encoder_weights))
    return net


def _load_encoder_weights(net: Any, path: Path) -> None:
    if not path.is_file():
        raise ModelError(f"encoder weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same answer
        raise ModelError(f"encoder weights file {path} cannot be read safely ({exc})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ModelError(f"encoder weights file {path} holds no tensors by name (a state dict)")
    own = net.encoder.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ModelError(f"encoder weights file {path} has no tensor that fits encoder {type(net.encoder).__name__}")
    net.encoder.load_state_dict(usable, strict=False)


def _class_table(classes: int | Sequence[str] | Sequence[dict[str, Any]] | Sequence[ClassInfo]) -> list[ClassInfo]:
    if isinstance(classes, int):
        names: list[Any] = [f"class_{i}" for i in range(classes)]
    else:
        names = list(classes)
    colors = class_colors(
        [n.name if isinstance(n, ClassInfo) else str(n["name"]) if isinstance(n, dict) else str(n) for n in names]
    )
    table = []
    for i, item in enumerate(names):
        if isinstance(item, ClassInfo):
            table.append(ClassInfo(i, item.name, item.color))
        elif isinstance(item, dict):
            table.append(ClassInfo(i, str(item["name"]), str(item.get("color", colors[i]))))
        else:
            table.append(ClassInfo(i, str(item), colors[i]))
    return table


def create_model(
    arch: str = "unet",
    encoder: str = "resnet18",
    bands: int | Sequence[str] = 3,
    classes: int | Sequence[str] | Sequence[dict[str, Any]] = 2,
    *,
    chip_size: int = 256,
    overlap: str | float = 0.125,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    pixel_size: float | None = None,
    encoder_weights: str | os.PathLike | None = None,
    name: str = "geoseg-model",
    **params: Any,
) -> Model:
    """Create a new model with ``smp.create_model`` and its model card.

    ``bands`` is a band count or the band names in input order (names let
    predict pick scene bands by their descriptions). ``classes`` is a count,
    names, or dicts with ``name`` and ``color``. ``encoder_weights`` is
    ``None`` (random), a local weights file, or an smp weights name such as
    ``"imagenet"`` (downloaded by smp: only when you ask for it). Extra
    keyword arguments go to ``smp.create_model``.

    Example:
        >>> model = create_model("unet", "resnet18", bands=["B02", "B03", "B04", "B08"],
        ...                      classes=["water", "forest", "field"], chip_size=256)
        >>> model.card.num_bands, model.card.num_classes, model.output_stride
        (4, 3, 32)
    """
    from geoseg.core.grid import parse_overlap

    band_names = generic_band_names(bands) if isinstance(bands, int) else [str(b) for b in bands]
    card = ModelCard(
        arch=arch.lower(),
        encoder=encoder,
        bands=band_names,
        classes=_class_table(classes),
        chip_size=int(chip_size),
        overlap=str(overlap),
        mean=None if mean is None else [float(v) for v in mean],
        std=None if std is None else [float(v) for v in std],
        pixel_size=None if pixel_size is None else float(pixel_size),
        params=dict(params),
        name=name,
        provenance={"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "geoseg_version": __version__},
    )
    if card.mean is not None and card.std is None:
        card.std = [1.0] * card.num_bands
    card.validate("create_model", numbers=False)  # saving and export refuse a non-finite mean or std
    parse_overlap(card.overlap, card.chip_size)
    net = build_network(card, encoder_weights)
    check_chip_size(card.chip_size, _output_stride(net))
    return Model(card, net)


def load_model(path: str | os.PathLike) -> Model:
    """Load a model from a geoseg checkpoint without executing code from the file.

    ``"default"`` names the model bundled with geoseg (``./default`` is a file).

    Example:
        >>> model = load_model("/tmp/doc_model.pt")
        >>> model.card.bands
        ['B04', 'B08']
    """
    if str(path) == "default":
        from geoseg.model.bundled import default_model_path

        path = default_model_path()
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        raise ModelError(
            f"{path} is an ONNX model: load it with geoseg.model.onnx.load_onnx (predict and run "
            "take it as it is); load_model reads .pt checkpoints"
        )
    card, state = read_checkpoint(path)
    try:
        shapes: torch.nn.Module | None = build_network(card, source=str(path), device="meta")
    except ModelError:
        shapes = None  # a few encoders (mit_b*) compute while they are built; the real build below answers
    if shapes is not None:
        _check_shapes(shapes, state, path, card)
    net = build_network(card, source=str(path))
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"{path}: weights do not fit {card.arch}/{card.encoder} ({first})") from None
    try:
        check_chip_size(card.chip_size, _output_stride(net), f"{path}: card field chip_size")
    except ChipSizeError as exc:
        raise ModelError(f"{exc}; re-save the model with geoseg") from None
    model = Model(card, net)
    model.eval()
    return model


def _check_shapes(meta_net: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, card: ModelCard) -> None:
    """Compare the file's tensors with the network its card describes before any memory is taken for it."""
    want = {k: tuple(v.shape) for k, v in meta_net.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    if want == have:
        return
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    if missing or extra:
        detail = f"{len(missing)} tensors missing, such as {missing[0]}" if missing else f"unexpected tensor {extra[0]}"
    else:
        key = next(k for k in want if want[k] != have[k])
        detail = f"{key} has shape {list(have[key])} in the file, the card's network needs {list(want[key])}"
    raise ModelError(
        f"{path}: weights do not fit {card.arch}/{card.encoder} as its card describes it ({detail}); "
        "re-save the model with geoseg"
    )
