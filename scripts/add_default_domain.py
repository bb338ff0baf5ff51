"""Write the training domain into a model file's card without retraining and without touching its weights.

The domain (``provenance["domain"]``, see ``geoseg.model.card.ModelCard.domain``) is computed as training
computes it: the footprint and date of each training scene, band percentiles of the training chips and the
mean confidence of the model (as stored in the file) on the validation blocks of the config's spatial split.
Only the safetensors header is rewritten: the tensor bytes stay bit-identical (checked before the file is
replaced).

    .venv/bin/python scripts/add_default_domain.py [MODEL] [CONFIG]

Defaults: geoseg/models/default.pt and configs/brandenburg_default.yaml. ``bundle_default_model.py`` calls
:func:`add_domain` after it writes the bundled file.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KNOWN_DATES = {"brandenburg_s2.tif": "2017-02-16"}
"""Acquisition dates of training scenes whose files carry no date tag (from the config's description and
data_samples/README.md: Sentinel-2 L1C, 16 Feb 2017)."""


def compute_domain(model: Any, config_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The domain of ``model`` trained with ``config_path``, and a check: validation chips and mean IoU."""
    from geoseg.training.config import read_config
    from geoseg.training.loop import EpochLoop
    from geoseg.training.prepare import open_scenes, split_scenes
    from geoseg.training.trainer import training_domain

    config = read_config(config_path)
    with tempfile.TemporaryDirectory(prefix="geoseg-domain-") as work:
        scenes, _, _, _ = open_scenes(config, None, Path(work))
        try:
            split = split_scenes(config, scenes)
            domain = training_domain(scenes, split)
            loop = EpochLoop(config, model, scenes, split, None, "cpu")
            cm, _ = loop.evaluate()
        finally:
            for scene in scenes:
                scene.close()
    for record in domain["scenes"]:
        record["date"] = record["date"] or KNOWN_DATES.get(record["name"])
    domain["validation_confidence"] = None if loop.confidence is None else round(loop.confidence, 4)
    summary = cm.summary([c.name for c in model.card.classes])
    return domain, {"validation_chips": len(split.val), "validation_mean_iou": summary["mean_iou"]}


def _split(raw: bytes) -> tuple[dict[str, Any], bytes]:
    (size,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + size]), raw[8 + size :]


def write_card(path: Path, card: Any) -> str:
    """Replace the card in ``path``'s safetensors header; the tensor bytes are kept as they are. Returns their sha256."""
    from geoseg.io.outputs import atomic_output
    from geoseg.model.checkpoint import CARD_KEY

    card.validate(str(path))
    raw = path.read_bytes()
    header, data = _split(raw)
    header["__metadata__"][CARD_KEY] = card.to_json()
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    new = struct.pack("<Q", len(text)) + text + data
    if _split(new)[1] != data:
        raise RuntimeError(f"{path}: the tensor bytes would change")
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(new)
    return hashlib.sha256(data).hexdigest()


def add_domain(path: Path, config_path: Path) -> dict[str, Any]:
    """Compute the domain of the model in ``path`` and write it into its card; returns the domain."""
    import geoseg

    model = geoseg.load_model(path)
    domain, check = compute_domain(model, config_path)
    stored = model.card.provenance.get("validation_chips")
    if stored is not None and stored != check["validation_chips"]:
        raise RuntimeError(f"{config_path} gives {check['validation_chips']} validation chips, the card {stored}")
    model.card.provenance["domain"] = domain
    digest = write_card(path, model.card)
    print(
        f"{path}: domain bbox {domain['bbox']}, dates {[s['date'] for s in domain['scenes']]}, "
        f"validation confidence {domain['validation_confidence']} (mean IoU now {check['validation_mean_iou']:.4f}, "
        f"card {model.card.provenance.get('validation_mean_iou')}); tensors sha256 {digest}"
    )
    return domain


def main() -> None:
    from geoseg.model.bundled import DEFAULT_MODEL

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MODEL
    config = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "configs" / "brandenburg_default.yaml"
    add_domain(path, config)


if __name__ == "__main__":
    main()
