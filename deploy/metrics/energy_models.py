"""Named energy models (``deploy/energy_models.json``, extendable with user files) and the energy per inference of a
profile under them: ``synops * E_synop + neuron_updates * E_neuron_update`` for the SNN and ``ann_macs * E_ann_mac``
for the ANN. The packaged file is the one source of per-operation energies: the Loihi 2 core map reads its Loihi
figures from here (:func:`packaged_energy`). The models, their sources and caveats travel into ``energy.json``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from neuromoco.errors import UserError

DEFAULT_MODELS = ("loihi", "45nm")


def _packaged() -> dict[str, dict[str, Any]]:
    text = resources.files("neuromoco.deploy").joinpath("energy_models.json").read_text()
    return dict(json.loads(text)["models"])


def packaged_energy(model: str, key: str) -> float:
    """``energy_pj[key]`` of the packaged model ``model`` (user files do not change it)."""
    return float(_packaged()[model]["energy_pj"][key])


def load_energy_models(extra: Iterable[str | Path] = ()) -> dict[str, dict[str, Any]]:
    """The table of named energy models: the packaged one, extended (or overridden by name) by ``extra`` files."""
    table = _packaged()
    for path in extra:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise UserError(f"energy model file not found: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"energy model file {path} is not valid JSON: {err}") from None
        models = data.get("models", data) if isinstance(data, dict) else None
        if not isinstance(models, dict):
            raise UserError(f"energy model file {path}: expected {{\"models\": {{NAME: {{...}}}}}}")
        table.update({k: v for k, v in models.items() if not k.startswith("_")})
    for name, model in table.items():
        _validate_model(name, model)
    return table


def _validate_model(name: str, model: Any) -> None:
    if not isinstance(model, dict) or not isinstance(model.get("energy_pj"), dict):
        raise UserError(f"energy model {name!r} needs an 'energy_pj' object with 'synop' (pJ)")
    e = model["energy_pj"]
    for key in ("synop", "neuron_update", "ann_mac"):
        value = e.get(key)
        if key == "synop" and value is None:
            raise UserError(f"energy model {name!r} lacks energy_pj.synop")
        if value is not None and (not isinstance(value, (int, float)) or value < 0 or not np.isfinite(value)):
            raise UserError(f"energy model {name!r}: energy_pj.{key} must be a non-negative number, got {value!r}")
    if not model.get("source"):
        raise UserError(f"energy model {name!r} states no source; every model must say where its figures come from")


def select_models(table: dict[str, dict[str, Any]], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    unknown = [n for n in names if n not in table]
    if unknown:
        raise UserError(f"unknown energy model(s) {', '.join(unknown)}; known: {', '.join(table)}")
    return {n: table[n] for n in names}


def energy(prof: dict[str, Any], models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Energy per inference (pJ) under each model, in total and per layer, for the SNN and the ANN."""
    out: dict[str, Any] = {}
    for name, model in models.items():
        e = model["energy_pj"]
        e_syn, e_nu, e_mac = e["synop"], e.get("neuron_update") or 0.0, e.get("ann_mac")
        per_layer = []
        for r in prof["layers"]:
            snn = r["synops_per_inference"] * e_syn + r["neuron_updates_per_inference"] * e_nu
            per_layer.append({"layer": r["layer"], "snn_pj": snn,
                              "ann_pj": None if e_mac is None else r["ann_macs"] * e_mac})
        t = prof["per_inference"]
        snn_syn = t["synops"] * e_syn
        snn_nu = t["neuron_updates"] * e_nu
        ann = None if e_mac is None else t["ann_macs"] * e_mac
        snn = snn_syn + snn_nu
        out[name] = {
            "snn_pj": snn, "snn_synops_pj": snn_syn, "snn_neuron_updates_pj": snn_nu, "ann_pj": ann,
            "ann_over_snn": None if ann is None or snn == 0 else ann / snn,
            "layers": per_layer,
        }
    return out
