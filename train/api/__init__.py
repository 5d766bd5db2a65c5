"""NeuroMoCo as a library: pre-train any spiking encoder with momentum contrast, fine-tune or probe it, and
export it to NIR, from Python (docs/api.md walks through it).

The calls run what the ``train`` commands run (the same typed configs, tasks and fit loop: resume, atomic
checkpoints, ``metrics.jsonl``, TensorBoard) and return small frozen result objects::

    from neuromoco.train.api import pretrain, finetune, export_nir

    pre = pretrain(my_encoder, "embedded", out="runs/pre", epochs=5)   # [T, B, C, H, W] -> [T, B, D]
    ft = finetune(my_encoder, pre, out="runs/ft", epochs=5)
    export_nir(ft.model, [2, 34, 34], out="runs/nir", dataset="embedded")

An encoder that steps one time step at a time (snnTorch, Norse cells) or keeps its state between calls
(SpikingJelly) goes through :class:`SequenceEncoder` (:func:`snntorch_encoder`, :func:`norse_encoder`,
:func:`spikingjelly_encoder`).
"""

from neuromoco.train.api.classify import ClassifyResult, finetune, linear_probe, supervised
from neuromoco.train.api.data import load_dataset
from neuromoco.train.api.encoders import (
    SequenceEncoder,
    norse_encoder,
    reset_snntorch,
    snntorch_encoder,
    spikingjelly_encoder,
)
from neuromoco.train.api.export import ExportResult, export_nir
from neuromoco.train.api.pretrain import NeuroMoCo, PretrainResult, pretrain
from neuromoco.train.engine.config import MoCoOptions, Recipe

__all__ = [
    "ClassifyResult",
    "ExportResult",
    "MoCoOptions",
    "NeuroMoCo",
    "PretrainResult",
    "Recipe",
    "SequenceEncoder",
    "export_nir",
    "finetune",
    "linear_probe",
    "load_dataset",
    "norse_encoder",
    "pretrain",
    "reset_snntorch",
    "snntorch_encoder",
    "spikingjelly_encoder",
    "supervised",
]
