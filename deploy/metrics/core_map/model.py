"""The Loihi 2 core model: per-core limits and per-operation costs (``deploy/loihi2_cores.json``, every figure with
its source and status). Its energies per synaptic operation and neuron update are not restated there: an entry
``"energy_model": [MODEL, KEY]`` takes its value from the packaged energy models (:mod:`..energy_models`)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from neuromoco.deploy.metrics.energy_models import packaged_energy


def load_core_model() -> dict[str, Any]:
    """The packaged Loihi 2 limits, costs and model statements, every entry with its ``value``."""
    model = json.loads(resources.files("neuromoco.deploy").joinpath("loihi2_cores.json").read_text())
    for part in ("limits", "costs"):
        for entry in model[part].values():
            if "energy_model" in entry:
                entry["value"] = packaged_energy(*entry.pop("energy_model"))
    return model


def limit_values(model: dict[str, Any]) -> dict[str, float]:
    """``{name: value}`` of the limits and costs, with the synapses (and shared kernel weights) per core derived
    from the synaptic memory and the bits each takes."""
    v = {k: float(e["value"]) for part in ("limits", "costs") for k, e in model[part].items()}
    bits = v["synaptic_memory_bytes_per_core"] * 8
    v["synapses_per_core"] = float(int(bits // v["bits_per_synapse"]))
    v["shared_weights_per_core"] = float(int(bits // v.get("bits_per_shared_weight", v["bits_per_synapse"])))
    return v
