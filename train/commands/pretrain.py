"""`train pretrain`: NeuroMoCo self-supervised pre-training (labels are never read).

Writes to the run directory: ``config.json``, ``metrics.jsonl`` (step and epoch lines), TensorBoard events in
``tb/``, ``last.pt`` after every epoch (atomically; an interrupted run loses at most the epoch it was in and
continues with ``--resume``) and ``pretrain.json`` (the summary) at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from neuromoco.train.engine.cliargs import add_data_args, add_run_args, add_runtime_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="vgg34", help="encoder architecture (see `train models`; default vgg34)")
    add_data_args(p)
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=20, help="epochs (default 20)")
    g.add_argument("--batch-size", type=int, default=64, help="global batch size, split over DDP ranks (default 64)")
    g.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3 for AdamW)")
    g.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"], help="default adamw")
    g.add_argument("--weight-decay", type=float, default=1e-4, help="on weights, not BN or biases (default 1e-4)")
    g.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warm-up before the cosine decay")
    g.add_argument("--grad-clip", type=float, default=0.0, help="clip the gradient norm (0: off)")
    m = p.add_argument_group("NeuroMoCo")
    m.add_argument("--queue-size", type=int, default=4096, help="K negative keys (default 4096)")
    m.add_argument("--momentum", type=float, default=0.999,
                   help="key encoder EMA momentum m (default 0.999; 0.99 suits short runs)")
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
    m.add_argument("--bn-splits", type=int, default=1,
                   help="BatchNorm groups per process (MoCo's SplitBatchNorm; emulates that many GPUs)")
    add_run_args(p)
    add_runtime_args(p)
    p.add_argument("--log-every", type=int, default=10, help="steps between metrics.jsonl step lines")


def run(args: argparse.Namespace) -> int:

    from neuromoco.errors import UserError
    from neuromoco.io import atomic_write_json
    from neuromoco.train import __version__
    from neuromoco.train.engine import data as D
    from neuromoco.train.engine import distributed as du
    from neuromoco.train.engine.checkpoint import load_checkpoint, restore_training_state, save_checkpoint
    from neuromoco.train.engine.cliargs import check_positive, resolve_workers, resume_path, write_config
    from neuromoco.train.engine.logging import MetricsLogger
    from neuromoco.train.engine.loops import (
        build_optimizer,
        cosine_schedule,
        time_major,
        train_epoch,
        train_loader,
    )
    from neuromoco.train.engine.runtime import make_runtime
    from neuromoco.train.engine.seeding import epoch_seed, seed_everything
    from neuromoco.train.moco import MoCo
    from neuromoco.train.models.registry import build_encoder, get_spec

    check_positive(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, time_steps=args.time_steps,
                   queue_size=args.queue_size, temperature=args.temperature, downsample=args.downsample,
                   bn_splits=args.bn_splits)
    if not 0.0 <= args.mix_lambda <= 1.0:
        raise UserError(f"--mix-lambda must be in [0, 1], got {args.mix_lambda}")
    if not 0.0 <= args.momentum <= 1.0:
        raise UserError(f"--momentum must be in [0, 1], got {args.momentum}")
    get_spec(args.model)
    run_dir = Path(args.out)
    resume = resume_path(args)
    rt = make_runtime(args.device, args.amp)
    try:
        world = rt.dist.world_size
        if args.batch_size % (world * args.bn_splits):
            raise UserError(f"--batch-size {args.batch_size} must divide into {world} rank(s) x "
                            f"{args.bn_splits} BatchNorm split(s)")
        local_batch = args.batch_size // world
        workers = resolve_workers(args.workers, rt.device.type)
        seed_everything(epoch_seed(args.seed, 0, rt.dist.rank))

        train_set = D.first_n(D.contrastive(args.dataset, "train", root=args.data_root, time_steps=args.time_steps,
                                            downsample=args.downsample, strength=args.augment_strength),
                                args.max_samples)
        frame = D.frame_shape(train_set)
        input_shape = frame[1:]
        if len(train_set) < args.batch_size:
            raise UserError(f"the training set has {len(train_set)} samples, fewer than --batch-size "
                            f"{args.batch_size}")
        if args.queue_size < args.batch_size:
            raise UserError(f"--queue-size {args.queue_size} must hold at least one batch ({args.batch_size})")
        if args.queue_size > len(train_set) and rt.is_main:
            print(f"note: the queue ({args.queue_size}) is larger than the training set ({len(train_set)}): it "
                  "will hold several keys of the same sample; consider --queue-size "
                  f"{max(args.batch_size, len(train_set) // 2)}", file=sys.stderr)

        seed_everything(args.seed)  # model initialisation depends on the seed only
        backbone = build_encoder(args.model, input_shape)
        moco = MoCo(backbone, dim=args.proj_dim, hidden=args.proj_hidden, queue_size=args.queue_size,
                    momentum=args.momentum, temperature=args.temperature, mix_lambda=args.mix_lambda,
                    mix_mode=args.mix_mode, shuffle_bn=args.shuffle_bn, bn_splits=args.bn_splits,
                    proj_bn=args.proj_bn).to(rt.device)
        params = list(moco.encoder_q.parameters())
        optimizer = build_optimizer(params, args.optimizer, args.lr, args.weight_decay)
        steps_per_epoch = len(train_set) // args.batch_size
        scheduler = cosine_schedule(optimizer, steps_per_epoch * args.epochs,
                                    round(args.warmup_epochs * steps_per_epoch))
        start_epoch, step, history = 1, 0, []
        if resume is not None:
            ckpt = load_checkpoint(resume, kind="pretrain")
            if ckpt["model"]["name"] != args.model or list(ckpt["model"]["input_shape"]) != list(input_shape):
                raise UserError(f"{resume} holds a {ckpt['model']['name']} for input {ckpt['model']['input_shape']}"
                                f", not a {args.model} for {input_shape}")
            start_epoch, step = restore_training_state(ckpt, moco, optimizer, scheduler, rt.scaler)
            history = list(ckpt.get("metrics", {}).get("history", []))
            if rt.is_main:
                print(f"resuming {resume} after epoch {ckpt['epoch']} (step {step})", file=sys.stderr)
        if rt.dist.enabled:
            moco.wrap_ddp(device_ids=[rt.device.index] if rt.device.type == "cuda" else None)

        logger = MetricsLogger(run_dir, enabled=rt.is_main, resume_epoch=start_epoch - 1 if resume else None,
                               resume_step=step if resume else None)
        data_info = {"dataset": args.dataset, "time_steps": args.time_steps, "downsample": args.downsample,
                     "train_samples": len(train_set)}
        if rt.is_main:
            write_config(run_dir, args, runtime=rt.describe(), input_shape=input_shape, data=data_info,
                         version=__version__)

        def step_fn(batch):
            (vq, vk), _labels = batch  # labels are never used
            vq, vk = time_major(vq.to(rt.device, non_blocking=True)), time_major(vk.to(rt.device, non_blocking=True))
            loss, mets = moco(vq, vk)
            return loss, mets, vq.shape[1]

        moco.train()
        t_start = time.perf_counter()
        summary: dict = {}
        for epoch in range(start_epoch, args.epochs + 1):
            seed_everything(epoch_seed(args.seed, epoch, rt.dist.rank))
            loader = train_loader(train_set, local_batch, seed=args.seed, epoch=epoch, workers=workers, rt=rt,
                                  drop_last=True)
            summary, step = train_epoch(step_fn, loader, optimizer, scheduler, rt, epoch=epoch, step=step,
                                        logger=logger, desc=f"pretrain {epoch}/{args.epochs}", params=params,
                                        grad_clip=args.grad_clip, log_every=args.log_every)
            history.append({"epoch": epoch, **summary})
            logger.log("epoch", step, epoch, **summary)
            if rt.is_main:
                print(f"epoch {epoch}/{args.epochs}: loss {summary['loss']:.4f}  contrastive acc "
                      f"{summary['acc']:.3f}  positive similarity {summary['pos_sim']:.3f}  "
                      f"{summary['samples_per_s']:.1f} samples/s", file=sys.stderr)
                save_checkpoint(run_dir / "last.pt", {
                    "kind": "pretrain", "version": __version__,
                    "model": {"name": args.model, "input_shape": list(input_shape), "kwargs": {}},
                    "data": data_info, "epoch": epoch, "step": step, "state_dict": moco.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": rt.scaler.state_dict() if rt.scaler is not None else {},
                    "moco": {"queue_size": args.queue_size, "momentum": args.momentum,
                             "temperature": args.temperature, "mix_lambda": args.mix_lambda,
                             "mix_mode": args.mix_mode, "proj_dim": args.proj_dim, "proj_hidden": args.proj_hidden,
                             "proj_bn": args.proj_bn},
                    "config": {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))},
                    "metrics": {"history": history}})
            du.barrier()
        logger.close()
        if rt.is_main:
            atomic_write_json(run_dir / "pretrain.json", {
                "model": args.model, "dataset": args.dataset, "epochs": args.epochs, "steps": step,
                "final": summary, "history": history, "runtime": rt.describe(),
                "wall_seconds_this_invocation": time.perf_counter() - t_start})
            print(f"pre-trained encoder: {run_dir / 'last.pt'}", file=sys.stderr)
        return 0
    finally:
        du.cleanup()
