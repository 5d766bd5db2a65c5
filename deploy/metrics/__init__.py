"""What a run costs, from one walk of the graph: synaptic operations, neuron updates and energy per inference,
NeuroBench's metrics, and a Loihi 2 core-mapping estimate.

* :mod:`.walk`: the one walk of the graph (synaptic layers from each spike source to its sink, their exact fan-out
  through the reference executor's own rule for each node with unit weights), computed once per graph;
* :mod:`.activity`: a run's spikes, accumulated over batches; :mod:`.synops`: the per-layer and per-inference
  counts from them; :mod:`.energy_models`: the named per-operation energies (the one source of them) and the
  energy per inference;
* :mod:`.footprint` and :mod:`.neurobench`: NeuroBench's static and workload metrics;
* :mod:`.core_map`: the Loihi 2 core map of the graph's Lava plan.

No module here dispatches on a node's type: a node's facts come from :mod:`neuromoco.deploy.nodes`, how it maps
its input from :func:`neuromoco.deploy.reference_executor.stateless_kernel`.
"""
