"""The model card: the JSON that travels beside a ``.nir`` file and says how to feed and read the graph."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from neuromoco.errors import UserError
from neuromoco.io import atomic_write_json

CARD_NAME = "model_card.json"
#: the key of ``extra`` under which ``train ... --qat`` records what the weights were trained for
QAT_KEY = "qat"


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
        if not isinstance(data, dict):
            raise UserError(f"model card {path} is not a JSON object")
        missing = [k for k in ("input_shape", "time_steps", "dt") if k not in data]
        if missing:
            raise UserError(f"model card {path} lacks {', '.join(missing)}")
        check_card(data, f"model card {path}")
        known = {f for f in ModelCard.__dataclass_fields__} - {"source"}
        extra = {k: v for k, v in data.items() if k not in known}
        card = ModelCard(**{k: v for k, v in data.items() if k in known}, source=f"the model card {path}")
        card.extra.update(extra)
        card.qat_deploy_options()  # a malformed ``extra.qat`` is refused on load, not at first use
        return card

    def qat_deploy_options(self) -> dict[str, str] | None:
        """The ``deploy`` target options the weights were trained for with ``train ... --qat`` (the card's
        ``extra.qat.deploy_options``, ``KEY=VALUE`` strings, e.g. ``{"scale": "layer"}``); None for a model
        trained without QAT. Deploying with other options would quantize onto a different grid."""
        qat = self.extra.get(QAT_KEY)
        if qat is None:
            return None
        items = qat.get("deploy_options", []) if isinstance(qat, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, str) and "=" in i for i in items):
            raise UserError(f"{self.source}: extra.{QAT_KEY}.deploy_options must be a list of KEY=VALUE strings, "
                            f"got {items if items is not None else qat!r}")
        return dict(item.partition("=")[::2] for item in items)

    @staticmethod
    def beside(nir_path: str | Path) -> Path:
        """Where the card of ``nir_path`` lives: ``model_card.json`` in the same folder, or ``X.card.json``."""
        nir_path = Path(nir_path)
        named = nir_path.with_suffix(".card.json")
        return named if named.exists() else nir_path.parent / CARD_NAME


def check_card(data: dict[str, Any], where: str) -> None:
    """Refuse a card whose numbers cannot describe a graph's input: one line naming ``where``, the field and
    its value (``model card x.card.json: dt must be > 0, got 0``)."""

    def fail(what: str, value: Any) -> NoReturn:
        raise UserError(f"{where}: {what}, got {value!r}")

    shape = data["input_shape"]
    if not isinstance(shape, list) or not shape:
        fail("input_shape must be a non-empty list of sizes", shape)
    for i, n in enumerate(shape):
        if not _is_int(n) or n < 1:
            fail(f"input_shape[{i}] must be an integer >= 1", n)
    _check_count(data["time_steps"], "time_steps", fail)
    dt = data["dt"]
    if not _is_number(dt) or not math.isfinite(dt) or dt <= 0:
        fail("dt must be > 0", dt)
    dataset = data.get("dataset", {})
    if not isinstance(dataset, dict):
        fail("dataset must be an object", dataset)
    for key in ("time_steps", "downsample"):
        if key in dataset:
            _check_count(dataset[key], f"dataset.{key}", fail)
    sensor = dataset.get("sensor_size", [])
    if not isinstance(sensor, list) or not all(_is_int(n) and n >= 1 for n in sensor):
        fail("dataset.sensor_size must be a list of integers >= 1", sensor)
    for key, kind in (("class_names", list), ("accuracy", dict), ("extra", dict)):
        if key in data and not isinstance(data[key], kind):
            fail(f"{key} must be a{'n object' if kind is dict else ' list'}", data[key])


def _check_count(value: Any, name: str, fail: Callable[[str, Any], NoReturn]) -> None:
    if not _is_int(value) or value < 1:
        fail(f"{name} must be an integer >= 1", value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
