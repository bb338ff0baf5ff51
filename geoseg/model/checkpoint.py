"""Checkpoint files: a safetensors file whose metadata holds the JSON model card.

safetensors stores raw tensors and a JSON header, so loading a model never
executes code from the file (unlike a pickle). The card is stored under the
metadata key ``geoseg_card``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from geoseg.core.errors import ModelError
from geoseg.io.paths import check_input_file
from geoseg.model.card import ModelCard
from geoseg.model.validate import show

if TYPE_CHECKING:
    import torch

__all__ = ["CARD_KEY", "read_card", "read_checkpoint", "write_checkpoint"]

CARD_KEY = "geoseg_card"
_MAX_HEADER = 100 * 1024 * 1024


def _header(path: Path) -> dict:
    """Parse the safetensors header without reading the tensors."""
    check_input_file(path, "model file", "give a .pt file written by geoseg", ModelError, empty_ok=True)  # empty: below
    with path.open("rb") as fh:
        head = fh.read(8)
        if not head:
            raise ModelError(f"model file {path} is empty: save or copy it again")
        if len(head) < 8:
            raise ModelError(f"{path} is not a geoseg model file: save the model with geoseg")
        (size,) = struct.unpack("<Q", head)
        if size > _MAX_HEADER:
            raise ModelError(
                f"{path} is not a geoseg model file (pickled or foreign checkpoints are refused, "
                f"they could run code): save the model with geoseg"
            )
        raw = fh.read(size)
        end = fh.seek(0, 2)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelError(
            f"{path} is not a geoseg model file (pickled or foreign checkpoints are refused, "
            f"they could run code): save the model with geoseg"
        ) from None
    stored = _check_entries(path, header)
    if 8 + size + stored > end:
        raise ModelError(f"model file {path} is truncated: save or copy it again")
    return header


def _check_entries(path: Path, header: object) -> int:
    """Refuse a header that is not safetensors' object of tensors; return the bytes its tensors take."""
    damaged = f"model file {path} has a damaged safetensors header"
    if not isinstance(header, dict):
        raise ModelError(f"{damaged} (a JSON {type(header).__name__}, not an object): save or copy it again")
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ModelError(f"{damaged} (__metadata__ is not an object of texts): save or copy it again")
    stored = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in offsets)
            and 0 <= offsets[0] <= offsets[1]
        ):
            raise ModelError(f"{damaged} (tensor {show(key)} has no valid data_offsets): save or copy it again")
        stored = max(stored, offsets[1])
    return stored


def read_card(path: str | Path) -> ModelCard:
    """Read only the model card of a checkpoint (fast: no tensors are loaded).

    Example:
        >>> card = read_card("model.pt")  # doctest: +SKIP
    """
    path = Path(path)
    meta = _header(path).get("__metadata__", {})
    if CARD_KEY not in meta:
        raise ModelError(f"{path} is a safetensors file without a geoseg model card: save the model with geoseg")
    return ModelCard.from_json(meta[CARD_KEY], source=str(path))


def read_checkpoint(path: str | Path) -> tuple[ModelCard, dict[str, torch.Tensor]]:
    """Read the card and the weights (as float32) of a checkpoint."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    card = read_card(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"model file {path} is damaged ({exc}): save or copy it again") from None
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
    return card, state


def write_checkpoint(path: str | Path, card: ModelCard, state: dict[str, torch.Tensor], half: bool = False) -> Path:
    """Write ``state`` and ``card`` to ``path`` atomically (temporary name, then rename).

    ``half=True`` stores floating-point weights as float16 (half the size).
    """
    from safetensors.torch import save_file

    from geoseg.io.outputs import atomic_output

    card.validate(str(path))
    tensors = {}
    for key, value in state.items():
        value = value.detach().cpu().contiguous()
        if half and value.is_floating_point():
            value = value.half()
        tensors[key] = value
    with atomic_output(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata={CARD_KEY: card.to_json()})
    return Path(path)
