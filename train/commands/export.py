"""`train export`: a classifier checkpoint as ``model.nir`` + ``model_card.json`` (deployable models only).

The card's accuracy is the test accuracy recorded in the checkpoint for those weights.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a classifier checkpoint (best.pt / last.pt)")
    p.add_argument("--out", required=True, help="directory for model.nir and model_card.json")


def run(args: argparse.Namespace) -> int:
    from neuromoco.train.engine.checkpoint import load_checkpoint
    from neuromoco.train.export.from_checkpoint import export_classifier

    ckpt = load_checkpoint(args.checkpoint, kind="classifier")
    path = export_classifier(ckpt, args.out)
    print(f"NIR graph: {path}\nmodel card: {path.parent / 'model_card.json'}")
    return 0
