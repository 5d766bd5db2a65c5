"""`train pretrain`: NeuroMoCo self-supervised pre-training (labels are never read).

Writes to the run directory: ``config.json``, ``metrics.jsonl`` (step and epoch lines), TensorBoard events in
``tb/``, ``last.pt`` after every epoch (atomically; an interrupted run loses at most the epoch it was in and
continues with ``--resume``) and ``pretrain.json`` (the summary) at the end. A run directory that holds a run is
refused without ``--resume`` or ``--overwrite`` (``neuromoco.train.engine.run_dir``).
"""

from __future__ import annotations

import argparse

from neuromoco.train.engine.cliargs import add_data_args, add_optim_args, add_run_args, add_runtime_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="cnn3-34", help="encoder architecture (see `train models`; default cnn3-34)")
    add_data_args(p)
    add_optim_args(p, epochs=20, batch_size=64, lr=1e-3)
    m = p.add_argument_group("NeuroMoCo")
    m.add_argument("--queue-size", type=int, default=None,
                   help="K negative keys (default: from the training set, the largest multiple of the batch size "
                        "that is at most half of it, at most 4096, at least one batch; said in the first log line)")
    m.add_argument("--momentum", type=float, default=0.999,
                   help="key encoder EMA momentum m (default 0.999; 0.99 suits short runs)")
    m.add_argument("--momentum-schedule", default="constant", choices=["constant", "cosine"],
                   help="constant m (default), or cosine: m rises from --momentum to 1 over the run (BYOL, MoCo v3)")
    m.add_argument("--temperature", type=float, default=0.2, help="tau (default 0.2)")
    m.add_argument("--mix-lambda", type=float, default=0.5,
                   help="MixInfoNCE lambda: 1 = InfoNCE on time-averaged features, 0 = per-step (default 0.5)")
    m.add_argument("--mix-mode", default="loss", choices=["loss", "logits"],
                   help="mix the two losses (default) or their logits")
    m.add_argument("--augment-strength", default="default", choices=["none", "weak", "default", "strong"],
                   help="strength of the two views' event augmentations (default: default)")
    m.add_argument("--proj-dim", type=int, default=128, help="projection output size (default 128)")
    m.add_argument("--proj-hidden", type=int, default=512, help="projection hidden size (default 512)")
    m.add_argument("--proj-bn", action=argparse.BooleanOptionalAction, default=True,
                   help="BatchNorm in the projection head, as MoCo v3 (default on; --no-proj-bn: MoCo v2's head)")
    m.add_argument("--no-shuffle-bn", dest="shuffle_bn", action="store_false",
                   help="do not shuffle the key batch for BatchNorm")
    m.add_argument("--collapse-epochs", type=int, default=3, metavar="N",
                   help="warn (epoch line, metrics.jsonl collapse_warning) when the positive similarity has fallen "
                        "N epochs in a row, the collapse signal (default 3; 0: off)")
    m.add_argument("--bn-splits", type=int, default=1,
                   help="BatchNorm groups per process (MoCo's SplitBatchNorm; emulates that many GPUs)")
    add_run_args(p)
    add_runtime_args(p)


def run(args: argparse.Namespace) -> int:
    from neuromoco.train.api.pretrain import run_pretrain
    from neuromoco.train.engine.config import pretrain_config

    run_pretrain(pretrain_config(args))  # the Python API's run: one implementation
    return 0
