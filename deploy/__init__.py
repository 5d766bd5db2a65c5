"""NeuroMoCo deployment: NIR loading and checks, a reference executor, Lava and ONNX targets, parity, energy.

deploy/ never imports train/: a `.nir` file and its model card are the whole contract.
"""

__version__ = "0.1.0"
