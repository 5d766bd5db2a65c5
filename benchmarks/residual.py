"""Residual (SEW-ResNet) beside the plain deployable CNN: training speed, accuracy at 10% labels, deploy speed.

For ``sew-resnet8-34`` and ``cnn3-34`` on the embedded dataset (34x34, 10 classes), with the real ``train``
commands, each stage its own process (as in ``ssl_embedded.py``):

* NeuroMoCo pre-training: samples/s (data loading included), on the first ``--pretrain-samples`` training
  samples for ``--pretrain-epochs`` epochs (short: the encoder is only started, not trained out);
* linear probe, fine-tuning and supervised training from scratch at ``--label-fraction`` (10%) labels:
  test top-1 (full test split), last and best epoch;
* deploy throughput (samples/s, all T steps each) of the shipped trained graphs
  ``nir_models/neuromoco_embedded_sew.nir`` and ``nir_models/neuromoco_embedded_cnn3.nir`` on the targets
  ``reference``, ``onnx``, ``onnx-int8``, ``lava-float``, ``lava-fixed`` and ``reference-fixed``, with each
  target's prediction agreement against the reference (the default options of each target; a QAT card's
  options are not applied here); a target that fails on a graph records its error instead of a figure.

Writes ``benchmarks/results/residual.json``; the machine is shared, so the load average is recorded.

    python benchmarks/residual.py            # defaults: about 15 min on 2 quiet cores
    python benchmarks/residual.py --quick    # a tiny check of the whole script (a minute or two)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import RESULTS, ROOT, dataset_frames, describe_path, machine_info, now, write_json
from ssl_embedded import run_stage

RESULT = RESULTS / "residual.json"
MODELS = ("sew-resnet8-34", "cnn3-34")
GRAPHS = {"sew-resnet8-34": ROOT / "nir_models" / "neuromoco_embedded_sew.nir",
          "cnn3-34": ROOT / "nir_models" / "neuromoco_embedded_cnn3.nir"}
TARGETS = ("reference", "onnx", "onnx-int8", "lava-float", "lava-fixed", "reference-fixed")


def training(model: str, a: argparse.Namespace, runs: Path) -> dict:
    """Pre-train briefly, then linear probe / fine-tune / supervised at ``a.label_fraction`` labels."""
    runs.mkdir(parents=True, exist_ok=True)
    data = ["--data-root", a.data_root] if a.data_root else []
    common = ["--seed", str(a.seed), "--overwrite", "--device", "cpu"]
    out: dict = {}
    out["pretrain"] = run_stage("pretrain", [
        "pretrain", "--dataset", "embedded", "--model", model, *data, "-T", str(a.time_steps),
        "--epochs", str(a.pretrain_epochs), "--max-samples", str(a.pretrain_samples), "--batch-size", "64",
        "--queue-size", str(a.queue_size), "--momentum", "0.99", "--out", str(runs / "pretrain"), *common], runs)
    hist = json.loads((runs / "pretrain" / "pretrain.json").read_text())["history"]
    out["pretrain"].update(samples_per_s=round(sum(h["samples_per_s"] for h in hist) / len(hist), 2),
                           samples_per_s_best_epoch=round(max(h["samples_per_s"] for h in hist), 2),
                           final_loss=round(hist[-1]["loss"], 4), samples_per_epoch=a.pretrain_samples)
    pre = str(runs / "pretrain" / "last.pt")
    down = ["--label-fraction", str(a.label_fraction), "--batch-size", "16", "--no-export", *data, *common]
    stages = {"linear": ["linear", "--pretrained", pre, "--epochs", str(a.linear_epochs), "--lr", "1e-2"],
              "finetune": ["finetune", "--pretrained", pre, "--epochs", str(a.finetune_epochs), "--lr", "1e-3"],
              "supervised": ["supervised", "--dataset", "embedded", "--model", model, "-T", str(a.time_steps),
                             "--epochs", str(a.finetune_epochs), "--lr", "1e-3"]}
    for name, argv in stages.items():
        out[name] = run_stage(name, [*argv, "--out", str(runs / name), *down], runs)
        acc = json.loads((runs / name / "accuracy.json").read_text())
        out[name].update(test_top1_last=acc["last"]["top1"], test_top1_best=acc["best"]["top1"],
                         best_epoch=acc["best"]["epoch"], train_samples=acc["train_samples"],
                         test_samples=acc["test_samples"],
                         samples_per_s=round(acc["train_samples_per_s"], 2) if acc.get("train_samples_per_s") else None)
    return out


def deploy_speed(path: Path, samples: int, batch: int) -> dict:
    """Samples/s of each target on the graph at ``path`` (its card's test split), agreement with the reference."""
    import numpy as np

    from neuromoco.deploy.card import ModelCard
    from neuromoco.deploy.graph import load_graph
    from neuromoco.deploy.result import RunResult
    from neuromoco.deploy.targets import get_target

    card = ModelCard.load(ModelCard.beside(path))
    graph = load_graph(path, input_shape=card.input_shape)
    frames, data_desc = dataset_frames(card, samples, None)
    x = np.ascontiguousarray(np.swapaxes(frames, 0, 1))  # [T, N, C, H, W]
    res: dict = {"graph": describe_path(path), "model": card.model, "card_accuracy": card.accuracy,
                 "data": data_desc, "samples": int(x.shape[1]), "time_steps": int(x.shape[0]), "batch": batch,
                 "nodes": len(graph.nodes), "edges": len(graph.edges),
                 "nodes_with_several_inputs": sum(1 for n in graph.nodes if sum(b == n for _, b in graph.edges) > 1)}
    ref_pred = None
    for name in TARGETS:
        entry: dict = {}
        try:
            target, opts = get_target(name)
            t0 = time.perf_counter()
            runner = target.runner(graph, card, opts)
            entry["build_s"] = round(time.perf_counter() - t0, 3)
            runner.run(x[:, :1])  # warm-up
            parts = []
            t0 = time.perf_counter()
            for i in range(0, x.shape[1], batch):
                parts.append(runner.run(x[:, i:i + batch]))
            wall = time.perf_counter() - t0
            out = RunResult.concatenate(parts)
            entry.update(seconds=round(wall, 3), samples_per_s=round(x.shape[1] / wall, 2),
                         steps_per_s=round(x.shape[1] * x.shape[0] / wall, 1))
            if ref_pred is None:
                ref_pred = out.predictions
            entry["prediction_agreement_with_reference"] = float(np.mean(out.predictions == ref_pred))
        except Exception as err:  # noqa: BLE001 - a target that cannot run the graph is a result, not a crash
            entry["error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        print(f"  {path.name} on {name}: {entry.get('samples_per_s', entry.get('error'))}", file=sys.stderr)
        res[name] = entry
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--time-steps", type=int, default=8)
    p.add_argument("--pretrain-epochs", type=int, default=3)
    p.add_argument("--pretrain-samples", type=int, default=1700, help="training samples per pre-training epoch")
    p.add_argument("--queue-size", type=int, default=1024)
    p.add_argument("--linear-epochs", type=int, default=30)
    p.add_argument("--finetune-epochs", type=int, default=8, help="fine-tuning and supervised epochs")
    p.add_argument("--label-fraction", type=float, default=0.1)
    p.add_argument("--deploy-samples", type=int, default=64)
    p.add_argument("--deploy-batch", type=int, default=32)
    p.add_argument("--skip-training", action="store_true",
                   help="deploy throughput only (the training figures already in --out are kept)")
    p.add_argument("--skip-deploy", action="store_true", help="training figures only")
    p.add_argument("--quick", action="store_true", help="a tiny check: 1 short epoch each, 8 deploy samples")
    p.add_argument("--runs", default=str(ROOT / "runs" / "bench_residual"))
    p.add_argument("--data-root", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULT))
    a = p.parse_args(argv)
    if a.quick:
        a.pretrain_epochs, a.pretrain_samples, a.queue_size = 1, 64, 64
        a.linear_epochs, a.finetune_epochs, a.deploy_samples, a.deploy_batch = 2, 1, 8, 8
        if a.out == str(RESULT):
            a.out = str(RESULTS / "residual_quick.json")
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    result: dict = {
        "benchmark": "residual", "dataset": "embedded (34x34, 2 polarities, 10 classes)", "models": list(MODELS),
        "time_steps": a.time_steps, "label_fraction": a.label_fraction, "quick": a.quick,
        "settings": {k: getattr(a, k) for k in ("pretrain_epochs", "pretrain_samples", "queue_size",
                                                 "linear_epochs", "finetune_epochs", "deploy_samples",
                                                 "deploy_batch", "seed")},
    }
    if a.skip_training and Path(a.out).exists():
        old = json.loads(Path(a.out).read_text())
        result.update({k: old[k] for k in ("settings", "training", "summary") if k in old})
    if not a.skip_training:
        result["training"] = {m: training(m, a, Path(a.runs) / m) for m in MODELS}
        result["summary"] = {m: {"pretrain_samples_per_s": t["pretrain"]["samples_per_s"],
                                 **{f"{k}_top1_last": t[k]["test_top1_last"]
                                    for k in ("linear", "finetune", "supervised")}}
                             for m, t in result["training"].items()}
    result["deploy"] = {}
    for model, path in GRAPHS.items():
        if a.skip_deploy:
            break
        if path.exists():
            result["deploy"][model] = deploy_speed(path, a.deploy_samples, a.deploy_batch)
        else:
            result["deploy"][model] = {"graph": describe_path(path), "error": "not found"}
    import torch

    result.update(total_wall_s=round(time.perf_counter() - t0, 1), date=now(),
                  machine=machine_info(loadavg_before=[round(v, 2) for v in load_before],
                                       torch_threads=torch.get_num_threads(),
                                       note="shared machine: other processes ran alongside; throughput is what "
                                            "this run got"))
    out = write_json(a.out, result)
    print(json.dumps(result.get("summary", {}), indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
