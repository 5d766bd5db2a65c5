"""The model card: the JSON that travels beside a ``.nir`` file and says how to feed and read the graph."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from neuromoco.errors import UserError
from neuromoco.io import atomic_write_json

CARD_NAME = "model_card.json"


@dataclass
class ModelCard:
    """What ``deploy`` needs besides the graph. Only ``input_shape``, ``time_steps`` and ``dt`` are required."""

    input_shape: list[int]  # [C, H, W] of one time step's frame
    time_steps: int  # T frames per sample
    dt: float  # seconds per step: the Euler step of every NIR neuron (see deploy/semantics.py)
    dataset: dict[str, Any] = field(default_factory=dict)  # {"name", "split", "preprocessing": {...}}
    class_names: list[str] = field(default_factory=list)
    accuracy: dict[str, float] = field(default_factory=dict)  # measured at export, e.g. {"test": 0.93}
    model: str = ""  # architecture name
    version: str = ""  # project version that wrote it
    extra: dict[str, Any] = field(default_factory=dict)
    # where input_shape / time_steps come from, for messages ("the model card X", "the frames in Y"); not saved
    source: str = field(default="the model card", compare=False, repr=False)

    def save(self, path: str | Path) -> Path:
        data = asdict(self)
        data.pop("source")
        return atomic_write_json(path, data)

    @staticmethod
    def load(path: str | Path) -> ModelCard:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"model card not found: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"model card {path} is not valid JSON: {err}") from None
        missing = [k for k in ("input_shape", "time_steps", "dt") if k not in data]
        if missing:
            raise UserError(f"model card {path} lacks {', '.join(missing)}")
        known = {f for f in ModelCard.__dataclass_fields__} - {"source"}
        extra = {k: v for k, v in data.items() if k not in known}
        card = ModelCard(**{k: v for k, v in data.items() if k in known}, source=f"the model card {path}")
        card.extra.update(extra)
        return card

    @staticmethod
    def beside(nir_path: str | Path) -> Path:
        """Where the card of ``nir_path`` lives: ``model_card.json`` in the same folder, or ``X.card.json``."""
        nir_path = Path(nir_path)
        named = nir_path.with_suffix(".card.json")
        return named if named.exists() else nir_path.parent / CARD_NAME
