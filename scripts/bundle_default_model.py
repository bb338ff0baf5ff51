"""Put a trained run's best model into the package as the default model (``-m default``).

Stores the weights as float16 (the file stays under 15 MB) and makes sure the
card carries the training data's attribution and licence from the config.

    .venv/bin/python scripts/bundle_default_model.py [RUN_DIR] [CONFIG]

``make default-model`` trains (configs/brandenburg_default.yaml -> runs/default)
and then runs this script, which also writes the training domain into the card
(``add_default_domain.add_domain``: scene footprint and date, band percentiles,
the stored model's validation confidence) without touching the weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

from add_default_domain import add_domain

import geoseg
from geoseg.model.bundled import DEFAULT_MODEL
from geoseg.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    run_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs" / "default"
    config = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "configs" / "brandenburg_default.yaml"
    cfg = load_config(config)
    model = geoseg.load_model(run_dir / "model.pt")
    for key in ("name", "description", "attribution", "licence"):
        if cfg[key]:
            if key == "name":
                model.card.name = cfg[key]
            else:
                model.card.provenance[key] = cfg[key]
    model.card.provenance["config"] = f"configs/{config.name}"
    DEFAULT_MODEL.parent.mkdir(parents=True, exist_ok=True)
    model.save(DEFAULT_MODEL, half=True)
    add_domain(DEFAULT_MODEL, config)  # computed on the float16 weights as stored, the dates the scene lacks added
    size = DEFAULT_MODEL.stat().st_size / 1e6
    print(
        f"{DEFAULT_MODEL.relative_to(ROOT)}: {model.card.name}, {size:.1f} MB, "
        f"validation mean IoU {model.card.provenance.get('validation_mean_iou')}"
    )


if __name__ == "__main__":
    main()
