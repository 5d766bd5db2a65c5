"""A Loihi 2 core-mapping estimate from the Lava plan: cores needed, fit, the most loaded core per time step.

A model, not Intel's compiler: the limits and costs are data (:mod:`.model`, ``deploy/loihi2_cores.json``, each
figure with its source and whether it is published or assumed), the partition is greedy per layer
(:mod:`.placement`; see the file's ``model`` list), and the per-step load comes from the measured spikes of a run
(:mod:`.load`). A convolution kept as a shared :class:`~neuromoco.deploy.loihi.kernel.Kernel` is placed with weight
sharing: its layer is cut into tiles of channels x rows x columns and a tile stores its channels' kernel weights
once (:mod:`.geometry` counts a kernel's synapses and fan-in from its geometry, never expanding it). The same plan
is also placed without sharing (``expanded``: every synapse stored) for comparison (:mod:`.report`).
"""

from neuromoco.deploy.metrics.core_map.geometry import ConvGeometry
from neuromoco.deploy.metrics.core_map.load import CoreLoad
from neuromoco.deploy.metrics.core_map.model import limit_values, load_core_model
from neuromoco.deploy.metrics.core_map.placement import Core, MapLayer, has_kernels, layers_from_plan, partition
from neuromoco.deploy.metrics.core_map.report import CoreMapping, core_map

__all__ = ["ConvGeometry", "Core", "CoreLoad", "CoreMapping", "MapLayer", "core_map", "has_kernels",
           "layers_from_plan", "limit_values", "load_core_model", "partition"]
