"""NeuroMoCo toolkit: self-supervised momentum contrast for spiking networks, deployed through NIR.

One import namespace: ``neuromoco.train`` (data, Norse models, NeuroMoCo, training loops, NIR export),
``neuromoco.deploy`` (NIR checks, reference executor, Lava and ONNX targets, parity, energy) and the
plumbing both share here: :mod:`neuromoco.errors` (the user-facing error), :mod:`neuromoco.io` (atomic
writes) and :mod:`neuromoco.cli` (the lazy argparse front-end of the ``train`` and ``deploy`` commands).
The folders ``train/`` and ``deploy/`` sit at the repository root and are mapped into this namespace by
``pyproject.toml`` (``[tool.setuptools.package-dir]``).
"""

__version__ = "0.1.0"
