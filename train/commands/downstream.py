"""`train finetune`, `train linear`, `train supervised`: classification on labels (one module, three modes).

* finetune   — the pre-trained encoder plus a new linear readout, all trained;
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
import sys
from pathlib import Path

from neuromoco.train.engine.cliargs import add_data_args, add_run_args, add_runtime_args

DEFAULTS = {  # epochs, lr per mode
    "finetune": (30, 1e-3),
    "linear": (100, 1e-2),
    "supervised": (30, 1e-3),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    mode = _mode_from_argv(p.prog)
    epochs, lr = DEFAULTS.get(mode, (30, 1e-3))
    if mode in ("finetune", "linear", None):
        p.add_argument("--pretrained", required=mode is not None, metavar="CKPT",
                       help="checkpoint written by `train pretrain` (its last.pt, or the run directory)")
    if mode in ("supervised", None):
        p.add_argument("--model", default="vgg34", help="architecture (see `train models`; default vgg34)")
    add_data_args(p, dataset_default=None, time_steps_default=None, downsample_default=None)
    p.add_argument("--label-fraction", type=float, default=1.0,
                   help="fraction of the train labels used, class-balanced and seeded (e.g. 0.01, 0.1, 1.0)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=epochs, help=f"epochs (default {epochs})")
    g.add_argument("--batch-size", type=int, default=32, help="global batch size (default 32)")
    g.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr:g})")
    g.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"], help="default adamw")
    g.add_argument("--weight-decay", type=float, default=1e-4, help="default 1e-4")
    g.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warm-up before the cosine decay")
    g.add_argument("--grad-clip", type=float, default=0.0, help="clip the gradient norm (0: off)")
    g.add_argument("--augment", default="none", choices=["none", "weak", "default", "strong"],
                   help="random event augmentation of each training sample, the contrastive views' policy at "
                        "this strength (default none: cached frames, fastest; ignored by linear)")
    g.add_argument("--eval-every", type=int, default=1, help="evaluate the test split every N epochs")
    add_run_args(p)
    add_runtime_args(p)
    p.add_argument("--export-weights", default="last", choices=["last", "best"],
                   help="which weights model.nir gets (default last: no selection on the test split)")
    p.add_argument("--no-export", dest="export", action="store_false", help="do not write model.nir")
    p.add_argument("--log-every", type=int, default=10, help="steps between metrics.jsonl step lines")


def _mode_from_argv(prog: str) -> str | None:
    last = prog.split()[-1] if prog else ""
    return last if last in DEFAULTS else None


def run(args: argparse.Namespace) -> int:
    import torch

    from neuromoco.errors import UserError
    from neuromoco.io import atomic_write_json
    from neuromoco.train import __version__
    from neuromoco.train.engine import data as D
    from neuromoco.train.engine import distributed as du
    from neuromoco.train.engine.checkpoint import load_checkpoint, restore_training_state, save_checkpoint
    from neuromoco.train.engine.cliargs import check_positive, resolve_workers, resume_path, write_config
    from neuromoco.train.engine.export import export_classifier
    from neuromoco.train.engine.logging import MetricsLogger
    from neuromoco.train.engine.loops import (
        build_optimizer,
        cosine_schedule,
        eval_loader,
        evaluate,
        time_major,
        train_epoch,
        train_loader,
    )
    from neuromoco.train.engine.runtime import make_runtime
    from neuromoco.train.engine.seeding import epoch_seed, seed_everything
    from neuromoco.train.models.registry import build_classifier, get_spec

    mode = args.command
    pre = load_checkpoint(args.pretrained, kind="pretrain") if mode in ("finetune", "linear") else None
    model_name = pre["model"]["name"] if pre else args.model
    get_spec(model_name)
    pdata = pre.get("data", {}) if pre else {}
    dataset = args.dataset or pdata.get("dataset") or "embedded"
    time_steps = args.time_steps or pdata.get("time_steps") or 16
    downsample = args.downsample or pdata.get("downsample") or 1
    check_positive(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, time_steps=time_steps,
                   downsample=downsample, eval_every=args.eval_every)
    run_dir = Path(args.out)
    resume = resume_path(args)
    rt = make_runtime(args.device, args.amp)
    try:
        world = rt.dist.world_size
        if args.batch_size % world:
            raise UserError(f"--batch-size {args.batch_size} must divide into {world} ranks")
        local_batch = args.batch_size // world
        workers = resolve_workers(args.workers, rt.device.type)
        seed_everything(epoch_seed(args.seed, 0, rt.dist.rank))

        full_train = D.labelled(dataset, "train", root=args.data_root, time_steps=time_steps, downsample=downsample,
                                augment=None if mode == "linear" else args.augment)
        meta = D.metadata(dataset, full_train)
        train_set = D.class_balanced_subset(D.first_n(full_train, args.max_samples), args.label_fraction, args.seed)
        test_set = D.first_n(D.labelled(dataset, "test", root=args.data_root, time_steps=time_steps,
                                        downsample=downsample), args.max_samples)
        input_shape = D.frame_shape(test_set)[1:]
        data_info = {"dataset": dataset, "time_steps": time_steps, "downsample": downsample,
                     "sensor_size": meta["sensor_size"], "class_names": meta["class_names"],
                     "label_fraction": args.label_fraction, "train_samples": len(train_set),
                     "test_samples": len(test_set)}

        seed_everything(args.seed)
        model = build_classifier(model_name, input_shape, meta["num_classes"])
        if pre is not None:
            prefix = "encoder_q.backbone."
            enc_state = {k[len(prefix):]: v for k, v in pre["state_dict"].items() if k.startswith(prefix)}
            try:
                model.encoder.load_state_dict(enc_state)
            except RuntimeError as err:
                raise UserError(f"{args.pretrained}: the encoder weights do not fit {model_name} for input "
                                f"{input_shape}: {str(err).splitlines()[0]}") from None
        model.to(rt.device)
        if mode == "linear":
            for p in model.encoder.parameters():
                p.requires_grad_(False)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = build_optimizer(params, args.optimizer, args.lr, args.weight_decay)

        if mode == "linear":
            n_batches = -(-len(train_set) // args.batch_size)
        else:
            n_batches = len(train_set) // args.batch_size
            if n_batches == 0:
                raise UserError(f"{len(train_set)} labelled training samples is fewer than --batch-size "
                                f"{args.batch_size}; lower it")
        scheduler = cosine_schedule(optimizer, n_batches * args.epochs, round(args.warmup_epochs * n_batches))

        start_epoch, step, history = 1, 0, []
        best = {"epoch": 0, "top1": -1.0}
        if resume is not None:
            ck = load_checkpoint(resume, kind="classifier")
            if ck["model"]["name"] != model_name or ck.get("mode") != mode:
                raise UserError(f"{resume} is a {ck.get('mode')} run of {ck['model']['name']}, not {mode} of "
                                f"{model_name}")
            start_epoch, step = restore_training_state(ck, model, optimizer, scheduler, rt.scaler)
            history = list(ck["metrics"].get("history", []))
            best = dict(ck["metrics"].get("best", best))

        logger = MetricsLogger(run_dir, enabled=rt.is_main, resume_epoch=start_epoch - 1 if resume else None,
                               resume_step=step if resume else None)
        if rt.is_main:
            write_config(run_dir, args, mode=mode, model=model_name, runtime=rt.describe(), input_shape=input_shape,
                         data=data_info, pretrained=str(pre["_path"]) if pre else None, version=__version__)

        def payload(epoch: int, full: bool) -> dict:
            out = {"kind": "classifier", "mode": mode, "version": __version__,
                   "model": {"name": model_name, "input_shape": list(input_shape),
                             "num_classes": meta["num_classes"], "kwargs": {}},
                   "data": data_info, "epoch": epoch, "step": step, "state_dict": model.state_dict(),
                   "pretrained": str(pre["_path"]) if pre else "",
                   "metrics": {"history": history, "best": best,
                               "test_top1": next((h["test_top1"] for h in reversed(history) if "test_top1" in h), None)}}
            if full:
                out.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                           scaler=rt.scaler.state_dict() if rt.scaler is not None else {})
            return out

        if mode == "linear":
            train_feats, test_feats = _cached_features(model, train_set, test_set, args.batch_size, workers, rt)
            trainer = _LinearProbe(model, train_feats, test_feats, local_batch=args.batch_size, seed=args.seed)
        else:
            net = model
            if rt.dist.enabled:
                net = torch.nn.parallel.DistributedDataParallel(
                    model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
            loss_fn = torch.nn.CrossEntropyLoss()

            def step_fn(batch):
                frames, labels = batch
                frames = time_major(frames.to(rt.device, non_blocking=True))
                labels = labels.to(rt.device, non_blocking=True)
                logits = net(frames)
                acc = (logits.detach().argmax(-1) == labels).float().mean()
                return loss_fn(logits.float(), labels), {"acc": acc}, labels.shape[0]

        test_loader = eval_loader(test_set, max(args.batch_size, 64), workers=workers, rt=rt)
        res: dict = {}
        for epoch in range(start_epoch, args.epochs + 1):
            seed_everything(epoch_seed(args.seed, epoch, rt.dist.rank))
            desc = f"{mode} {epoch}/{args.epochs}"
            if mode == "linear":
                summary, step = trainer.epoch(optimizer, scheduler, rt, epoch=epoch, step=step, logger=logger,
                                              log_every=args.log_every)
            else:
                model.train()
                loader = train_loader(train_set, local_batch, seed=args.seed, epoch=epoch, workers=workers, rt=rt,
                                      drop_last=True)
                summary, step = train_epoch(step_fn, loader, optimizer, scheduler, rt, epoch=epoch, step=step,
                                            logger=logger, desc=desc, params=params, grad_clip=args.grad_clip,
                                            log_every=args.log_every)
            if epoch % args.eval_every == 0 or epoch == args.epochs:
                res = trainer.evaluate() if mode == "linear" else evaluate(model, test_loader, rt, f"test {epoch}")
                summary.update(test_top1=res["top1"], test_loss=res["loss"])
            history.append({"epoch": epoch, **summary})
            logger.log("epoch", step, epoch, **summary)
            improved = "test_top1" in summary and summary["test_top1"] > best["top1"]
            if improved:
                best = {"epoch": epoch, "top1": summary["test_top1"]}
            if rt.is_main:
                line = f"epoch {epoch}/{args.epochs}: loss {summary['loss']:.4f} train acc {summary['acc']:.3f}"
                if "test_top1" in summary:
                    line += f"  test top-1 {summary['test_top1']:.4f} (best {best['top1']:.4f} @ {best['epoch']})"
                print(line, file=sys.stderr)
                save_checkpoint(run_dir / "last.pt", payload(epoch, full=True))
                if improved:
                    save_checkpoint(run_dir / "best.pt", payload(epoch, full=False))
            du.barrier()
        logger.close()

        last = next((h for h in reversed(history) if "test_top1" in h), None)
        accuracy = {"mode": mode, "model": model_name, "dataset": dataset, "label_fraction": args.label_fraction,
                    "train_samples": len(train_set), "test_samples": len(test_set),
                    "best": {"epoch": best["epoch"], "top1": best["top1"]},
                    "last": {"epoch": last["epoch"], "top1": last["test_top1"]} if last else None,
                    "pretrained": str(pre["_path"]) if pre else None,
                    "train_samples_per_s": (sum(h["samples_per_s"] for h in history) / len(history)
                                            if history else None)}
        if rt.is_main:
            atomic_write_json(run_dir / "accuracy.json", accuracy)
            print(f"test top-1: last {accuracy['last']['top1']:.4f} (epoch {accuracy['last']['epoch']}), best "
                  f"{best['top1']:.4f} (epoch {best['epoch']})  -> {run_dir / 'accuracy.json'}", file=sys.stderr)
            if args.export and model.deployable:
                src = run_dir / ("best.pt" if args.export_weights == "best" else "last.pt")
                ck = load_checkpoint(src, kind="classifier")
                path = export_classifier(ck, run_dir)
                if path is not None:
                    print(f"NIR graph: {path}", file=sys.stderr)
            elif args.export and rt.is_main:
                print(f"{model_name} is not deployable: no model.nir written", file=sys.stderr)
        return 0
    finally:
        du.cleanup()


def _cached_features(model, train_set, test_set, batch_size, workers, rt):
    """Time-averaged encoder features ``[N, D]`` and labels of both splits (encoder frozen, eval mode)."""
    import torch
    from torch.utils.data import DataLoader

    from neuromoco.train.engine.loops import _progress, time_major

    model.encoder.eval()
    out = []
    for name, ds in (("train", train_set), ("test", test_set)):
        feats, labels = [], []
        loader = DataLoader(ds, batch_size=max(batch_size, 64), shuffle=False, num_workers=workers)
        with torch.no_grad():
            for frames, y in _progress(loader, f"features ({name})", rt.is_main):
                with rt.autocast():
                    f = model.encoder(time_major(frames.to(rt.device)))
                feats.append(f.float().mean(0))
                labels.append(y.to(rt.device))
        out.append((torch.cat(feats), torch.cat(labels)))
    return out


class _LinearProbe:
    """Trains ``model.head`` on cached features; identical on every rank (no sharding: it is cheap)."""

    def __init__(self, model, train, test, local_batch: int, seed: int) -> None:
        self.model, self.train, self.test, self.batch, self.seed = model, train, test, local_batch, seed

    def epoch(self, optimizer, scheduler, rt, *, epoch, step, logger, log_every):
        import time

        import torch

        from neuromoco.train.engine.seeding import epoch_seed, loader_generator

        head = self.model.head
        head.train()
        x, y = self.train
        order = torch.randperm(len(y), generator=loader_generator(epoch_seed(self.seed, epoch))).to(y.device)
        t0 = time.perf_counter()
        tot_loss = tot_acc = 0.0
        for i in range(0, len(y), self.batch):
            idx = order[i:i + self.batch]
            logits = head(x[idx])
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            tot_loss += float(loss.detach()) * len(idx)
            tot_acc += float((logits.argmax(-1) == y[idx]).sum())
            if logger is not None and step % log_every == 0:
                logger.log("step", step, epoch, loss=float(loss.detach()), lr=optimizer.param_groups[0]["lr"])
        dt = time.perf_counter() - t0
        n = len(y)
        return {"loss": tot_loss / n, "acc": tot_acc / n, "samples": n, "seconds": dt,
                "samples_per_s": n / max(dt, 1e-9), "lr": optimizer.param_groups[0]["lr"]}, step

    def evaluate(self):
        import torch

        x, y = self.test
        with torch.no_grad():
            logits = self.model.head(x)
        return {"top1": float((logits.argmax(-1) == y).float().mean()),
                "loss": float(torch.nn.functional.cross_entropy(logits, y)), "n": len(y)}
