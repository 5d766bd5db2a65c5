"""NeuroMoCo toolkit: self-supervised momentum contrast for spiking networks, deployed through NIR.

The public API (``neuromoco.__all__``, walk-through in docs/api.md) is re-exported here from its two halves:

- :mod:`neuromoco.train.api`: pre-train any encoder ``[T, B, ...] -> [T, B, D]`` with NeuroMoCo (``pretrain``,
  ``NeuroMoCo``), fine-tune or probe it (``finetune``, ``linear_probe``, ``supervised``), read datasets
  (``load_dataset``), adapt Norse / snnTorch / SpikingJelly networks, export to NIR (``export_nir``);
- :mod:`neuromoco.deploy.api`: load a NIR graph with its model card (``Model``), ``run`` it on a target,
  ``export`` a target's artefact, compare targets (``parity`` -> ``ParityReport``) and ``profile`` energy.

The names are imported on first use, so ``import neuromoco`` stays light (no torch). The rest of the namespace:
``neuromoco.train`` and ``neuromoco.deploy`` (the folders ``train/`` and ``deploy/`` at the repository root,
mapped here by ``pyproject.toml``), :mod:`neuromoco.errors` (the user-facing error), :mod:`neuromoco.io`
(atomic writes) and :mod:`neuromoco.cli` (the front-end of the ``train`` and ``deploy`` commands).
"""

from __future__ import annotations

from neuromoco.lazy import lazy_attributes

__version__ = "0.1.0"

#: where each public name lives (the modules' own ``__all__``; tests/test_public_api.py pins the list)
_TRAIN = ("ClassifyResult", "ExportResult", "MoCoOptions", "NeuroMoCo", "PretrainResult", "Recipe", "SequenceEncoder",
          "export_nir", "finetune", "linear_probe", "load_dataset", "norse_encoder", "pretrain", "reset_snntorch",
          "snntorch_encoder", "spikingjelly_encoder", "supervised")
_DEPLOY = ("EnergyReport", "Model", "ParityReport", "RunResult", "export", "parity", "profile", "run")
_HOME = {**{name: "neuromoco.train.api" for name in _TRAIN}, **{name: "neuromoco.deploy.api" for name in _DEPLOY}}

__all__ = [*_TRAIN, *_DEPLOY]


#: a public name, imported from its API module on first access
__getattr__ = lazy_attributes(__name__, _HOME)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
