"""What `train finetune`, `train linear` and `train supervised` share: their options and their run.

Each mode is a row of :data:`~neuromoco.train.engine.modes.MODES` (default epochs and lr, whether it starts
from a pre-trained encoder, whether that encoder stays frozen); :data:`FINETUNE`, :data:`LINEAR` and
:data:`SUPERVISED` are the three commands (``train/cli.py`` names them as ``downstream:FINETUNE`` etc.).

* finetune   — the pre-trained encoder plus a new linear readout, all trained; by default the readout is first
               warm-started as a linear probe on the frozen encoder (LP-FT: the "fine-tuning recipe" options);
* linear     — the pre-trained encoder frozen (evaluation mode), only the readout trained, on features
               computed once (the readout is linear, so the mean over T of per-step logits equals the readout
               of the time-averaged features: caching those is exact);
* supervised — the same architecture from random initialisation (the baseline).

``--label-fraction`` keeps a seeded, class-balanced subset of the train split. The test split is evaluated
after every epoch; ``accuracy.json`` reports the best epoch's and the last epoch's test accuracy (the paper's
recipe reports the best; the last involves no selection on the test set). ``last.pt`` (resumable) and
``best.pt`` are written; for deployable models ``model.nir`` and ``model_card.json`` (from the last epoch's
weights by default, ``--export-weights best`` to change).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from neuromoco.train.engine.cliargs import add_data_args, add_optim_args, add_run_args, add_runtime_args
from neuromoco.train.engine.modes import MODES, Mode


def add_arguments(p: argparse.ArgumentParser, mode: Mode) -> None:
    if mode.pretrained:
        p.add_argument("--pretrained", required=True, metavar="CKPT",
                       help="checkpoint written by `train pretrain` (its last.pt, or the run directory), or a "
                            "trained classifier's (`train supervised` / `finetune`): its encoder is the start")
    if mode.takes_model:
        p.add_argument("--model", default="cnn3-34", help="architecture (see `train models`; default cnn3-34)")
    add_data_args(p, dataset_default=None, time_steps_default=None, downsample_default=None)
    p.add_argument("--label-fraction", type=float, default=1.0,
                   help="fraction of the train labels used, class-balanced and seeded (e.g. 0.01, 0.1, 1.0)")
    g = add_optim_args(p, epochs=mode.epochs, batch_size=32, lr=mode.lr)
    g.add_argument("--augment", default="none", choices=["none", "weak", "default", "strong"],
                   help="random event augmentation of each training sample, the contrastive views' policy at "
                        "this strength (default none: cached frames, fastest; ignored by linear)")
    g.add_argument("--eval-every", type=int, default=1, help="evaluate the test split every N epochs")
    if mode.tunes_backbone:
        p.set_defaults(warmup_epochs=mode.warmup_epochs)
        r = p.add_argument_group("fine-tuning recipe (docs/training.md; the old recipe: --backbone-lr-scale 1 "
                                 "--head-warmup-epochs 0 --no-freeze-bn --warmup-epochs 0)")
        r.add_argument("--backbone-lr-scale", type=float, default=mode.backbone_lr_scale,
                       help=f"the encoder's learning rate is --lr x this (default {mode.backbone_lr_scale:g})")
        r.add_argument("--head-warmup-epochs", type=int, default=mode.head_warmup_epochs,
                       help="first train the readout alone for N epochs on the frozen encoder's cached features "
                            f"(a linear probe, LP-FT), then everything (default {mode.head_warmup_epochs}; 0: off)")
        r.add_argument("--head-warmup-lr", type=float, default=1e-2,
                       help="learning rate of that readout warm start (default 0.01, as `train linear`)")
        r.add_argument("--freeze-bn", action=argparse.BooleanOptionalAction, default=mode.freeze_bn,
                       help="keep the encoder's BatchNorm statistics (running mean and variance) pre-trained: "
                            f"evaluation mode while training (default {'on' if mode.freeze_bn else 'off'})")
    add_run_args(p)
    add_runtime_args(p)
    if not mode.frozen:
        q = p.add_argument_group("quantization-aware training")
        q.add_argument("--qat", default="none", choices=["none", "loihi"],
                       help="loihi: train on the Lava fixed-point plan's weight grid (BatchNorm folded and frozen, "
                            "weights fake-quantized, straight-through gradients; docs/training.md); default none")
        q.add_argument("--qat-weight-bits", type=int, default=8, choices=[8, 16],
                       help="the grid of `deploy ... -o weight_bits=N` (default 8)")
        q.add_argument("--qat-scale", default="neuron", choices=["neuron", "layer"],
                       help="the grid of `deploy ... -o scale=...`: one scale per neuron or per layer (default neuron)")
    p.add_argument("--export-weights", default="last", choices=["last", "best"],
                   help="which weights model.nir gets (default last: no selection on the test split)")
    p.add_argument("--no-export", dest="export", action="store_false", help="do not write model.nir")


def run(args: argparse.Namespace, mode: Mode) -> int:
    from neuromoco.train.api.classify import run_classify
    from neuromoco.train.engine.config import classify_config

    run_classify(classify_config(args, mode))  # the Python API's run: one implementation
    return 0


@dataclass(frozen=True)
class DownstreamCommand:
    """One downstream mode as a command: what the CLI front-end calls."""

    mode: Mode

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        add_arguments(p, self.mode)

    def run(self, args: argparse.Namespace) -> int:
        return run(args, self.mode)


FINETUNE = DownstreamCommand(MODES["finetune"])
LINEAR = DownstreamCommand(MODES["linear"])
SUPERVISED = DownstreamCommand(MODES["supervised"])
