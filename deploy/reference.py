"""The old import path of the PyTorch reference executor, kept for code that imported it from here.

The executor is :mod:`neuromoco.deploy.reference_executor`; the ``reference`` *target* that wraps it is
:mod:`neuromoco.deploy.targets.reference`.
"""

from neuromoco.deploy.reference_executor import ReferenceExecutor, stateless_kernel

__all__ = ["ReferenceExecutor", "stateless_kernel"]
