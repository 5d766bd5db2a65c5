"""Synaptic operations, neuron updates and energy per inference: the public functions, kept at this path for
scripts that import them. They live in :mod:`neuromoco.deploy.metrics` (see there)."""

from neuromoco.deploy.metrics.activity import Activity, input_events
from neuromoco.deploy.metrics.energy_models import DEFAULT_MODELS, energy, load_energy_models, select_models
from neuromoco.deploy.metrics.synops import profile
from neuromoco.deploy.metrics.walk import SynapticLayer, neuron_sizes, synaptic_layers

__all__ = ["DEFAULT_MODELS", "Activity", "SynapticLayer", "energy", "input_events", "load_energy_models",
           "neuron_sizes", "profile", "select_models", "synaptic_layers"]
