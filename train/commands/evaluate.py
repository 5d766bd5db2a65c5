"""`train eval`: top-1 accuracy of a classifier checkpoint on a dataset split.

Writes ``eval_<dataset>_<split>.json`` to ``--out`` (default: the checkpoint's directory); with ``--export``
and a deployable model, also ``model.nir`` + ``model_card.json`` carrying the accuracy measured here.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neuromoco.train.engine.cliargs import add_runtime_args

if TYPE_CHECKING:
    from torch.utils.data import Dataset


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, metavar="CKPT",
                   help="a classifier checkpoint (best.pt / last.pt of finetune, linear or supervised)")
    p.add_argument("--dataset", default=None, help="dataset name (default: the one it was trained on)")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--data-root", default=None, help="where the dataset files are")
    p.add_argument("--batch-size", type=int, default=64, help="default 64")
    p.add_argument("--max-samples", type=int, default=None, help="only the first N samples")
    p.add_argument("--out", default=None, help="where to write the result (default: the checkpoint's directory)")
    p.add_argument("--export", action="store_true", help="also write model.nir + model_card.json (deployable models)")
    add_runtime_args(p, seed=False)  # evaluation draws nothing at random


def run(args: argparse.Namespace) -> int:
    from neuromoco.errors import UserError
    from neuromoco.io import atomic_write_json
    from neuromoco.train.data.registry import is_folder_name
    from neuromoco.train.engine import distributed as du
    from neuromoco.train.engine.checkpoint import load_checkpoint
    from neuromoco.train.engine.cliargs import resolve_workers
    from neuromoco.train.engine.loops import eval_loader, evaluate
    from neuromoco.train.engine.runtime import make_runtime
    from neuromoco.train.export.from_checkpoint import classifier_from_checkpoint, export_classifier
    from neuromoco.train.models.neurons import set_lif_impl

    ckpt = load_checkpoint(args.checkpoint, kind="classifier")
    data = ckpt.get("data", {})
    name = args.dataset or data.get("dataset")
    if not name:
        raise UserError("the checkpoint names no dataset: pass --dataset")
    rt = make_runtime(args.device, args.amp, progress=not args.no_progress, lif_impl=args.lif_impl,
                      log_every=args.log_every)
    try:
        model = classifier_from_checkpoint(ckpt).to(rt.device)
        set_lif_impl(model, rt.lif_impl)
        ds = _dataset(args, ckpt, name)
        res = evaluate(model, eval_loader(ds, args.batch_size, workers=resolve_workers(args.workers, rt.device.type),
                                          rt=rt), rt, f"eval {name}/{args.split}")
        out = Path(args.out) if args.out else Path(ckpt["_path"]).parent
        result = {"checkpoint": ckpt["_path"], "dataset": name, "split": args.split, "top1": res["top1"],
                  "loss": res["loss"], "samples": res["n"], "model": ckpt["model"]["name"],
                  "epoch": ckpt.get("epoch"), "time_steps": data.get("time_steps"),
                  "downsample": data.get("downsample")}
        if rt.is_main:
            label = Path(name).name if is_folder_name(name) else name  # a folder's path is no file name
            path = atomic_write_json(out / f"eval_{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}_{args.split}.json", result)
            print(f"{name}/{args.split}: top-1 {res['top1']:.4f} over {res['n']} samples -> {path}")
            if args.export:
                nir_path = export_classifier(ckpt, out, accuracy={args.split: res["top1"]})
                print(f"NIR graph: {nir_path}")
        return 0
    finally:
        du.cleanup()


def _dataset(args: argparse.Namespace, ckpt: dict[str, Any], name: str) -> Dataset:
    """The split to evaluate, framed as the checkpoint was trained; refused when its frames or classes do not
    fit the model. A recordings folder is read with the sensor size and time unit training used (unless
    --dataset says otherwise)."""
    from neuromoco.errors import UserError
    from neuromoco.train.data.registry import is_folder_name
    from neuromoco.train.engine import loaders as D

    data, model = ckpt.get("data", {}), ckpt["model"]
    own = D.own_options(data.get("sensor_size"), data.get("time_unit"),
                        bool((data.get("recipe") or {}).get("sensor_size_inferred"))) \
        if is_folder_name(name) and not args.dataset else {}
    ds = D.first_n(D.labelled(name, args.split, root=args.data_root, time_steps=int(data.get("time_steps", 16)),
                              downsample=int(data.get("downsample", 1)), **own), args.max_samples)
    shape = D.frame_shape(ds)[1:]
    if list(shape) != list(model["input_shape"]):
        raise UserError(f"{name} frames are {shape}, the model was built for {model['input_shape']}")
    meta = D.metadata(name, **own)
    if meta["num_classes"] != int(model["num_classes"]):
        raise UserError(f"{name} has {meta['num_classes']} classes, the checkpoint's readout {model['num_classes']}")
    return ds
