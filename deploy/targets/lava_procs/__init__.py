"""Lava processes the Lava target adds to Lava's own (a neuron with NIR's full parameter set, a recorder).

They live in their own package because Lava's compiler looks for a process's models by importing every
module in the process's folder; kept apart, that search touches only these two small modules.
Import :mod:`neuromoco.deploy.lava_compat` (``import_lava()``) before importing them.
"""
