"""The Loihi plan: a NIR graph as the fixed-point (or floating-point) program a Loihi 2 chip would run.

The plan is its own package, not a part of a target: the Lava target (:mod:`neuromoco.deploy.targets.lava`)
builds Lava processes from it, the ``reference-fixed`` emulator (:mod:`neuromoco.deploy.targets.reference_fixed`)
runs its integer arithmetic in PyTorch, quantization-aware training takes its weight grid from it, and the core
map (:mod:`neuromoco.deploy.metrics.core_map`) places its layers. Nothing here imports Lava.

Modules, one job each:

* :mod:`.layout`: which NIR nodes become neuron layers and connections, and their delays;
* :mod:`.linear_ops` and :mod:`.probe`: a stateless node as a linear map plus a bias;
* :mod:`.compose`: those maps composed along the graph into one connection per source layer;
* :mod:`.compile`: graph -> :class:`~.plan.LavaPlan`; :mod:`.fixed_point`: its Loihi 2 quantization;
* :mod:`.plan`: the plan itself; :mod:`.plan_io`: the plan as one HDF5 file.
"""
