"""`train` command line: data, models, pretrain, finetune, linear, supervised, eval, export."""

from __future__ import annotations

import warnings

from neuromoco.cli import run_cli

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("neuromoco.train.commands.data", "list datasets and their status; render samples as PNG"),
    "models": ("neuromoco.train.commands.models", "list the model architectures with parameter counts"),
    "pretrain": ("neuromoco.train.commands.pretrain", "self-supervised NeuroMoCo pre-training (labels unused)"),
    "finetune": ("neuromoco.train.commands.downstream:FINETUNE", "fine-tune the whole pre-trained network on labels"),
    "linear": ("neuromoco.train.commands.downstream:LINEAR",
               "linear probe: frozen pre-trained encoder, trained linear head"),
    "supervised": ("neuromoco.train.commands.downstream:SUPERVISED", "supervised training from scratch (the baseline)"),
    "eval": ("neuromoco.train.commands.evaluate", "evaluate a checkpoint on a test split"),
    "export": ("neuromoco.train.commands.export", "export a checkpoint as model.nir with its model card"),
}


def main(argv: list[str] | None = None) -> int:
    # Norse 1.1 calls torch.jit.script at import; the deprecation notice is noise for our users
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*is deprecated", category=FutureWarning)
    return run_cli("train", __doc__.splitlines()[0], COMMANDS, argv,
                   interrupted="interrupted (nothing written so far is deleted: --resume continues the run from its "
                               "last checkpoint, or from epoch 1 before the first)")


if __name__ == "__main__":
    raise SystemExit(main())
