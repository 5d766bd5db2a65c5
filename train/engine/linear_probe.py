"""The linear probe: a frozen encoder's time-averaged features, computed once, and a readout trained on them.

Exact, not an approximation: the readout is linear, so the mean over T of per-step logits equals the readout
of the time-averaged features.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from neuromoco.train.engine.loops import progress, time_major
from neuromoco.train.engine.run_log import MetricsLogger
from neuromoco.train.engine.runtime import Runtime
from neuromoco.train.engine.seeding import epoch_seed, loader_generator
from neuromoco.train.models.base import SpikingClassifier

Features = tuple[torch.Tensor, torch.Tensor]  # ([N, D] features, [N] labels)


@torch.no_grad()
def cached_features(model: SpikingClassifier, datasets: dict[str, Dataset], batch_size: int, workers: int,
                    rt: Runtime) -> dict[str, Features]:
    """Time-averaged encoder features and labels of each dataset (encoder in evaluation mode)."""
    model.encoder.eval()
    out = {}
    for name, ds in datasets.items():
        feats, labels = [], []
        loader = DataLoader(ds, batch_size=max(batch_size, 64), shuffle=False, num_workers=workers)
        bar = progress(loader, f"features ({name})", rt, unit="batch")
        for frames, y in bar:
            with rt.autocast():
                f = model.encoder(time_major(frames.to(rt.device)))
            feats.append(f.float().mean(0))
            labels.append(y.to(rt.device))
            bar.done(len(y))
        bar.close()
        out[name] = (torch.cat(feats), torch.cat(labels))
    return out


class LinearProbe:
    """Trains ``model.head`` on cached features; identical on every rank (no sharding: it is cheap)."""

    def __init__(self, model: SpikingClassifier, train: Features, test: Features, batch_size: int,
                 seed: int) -> None:
        self.model, self.train, self.test, self.batch, self.seed = model, train, test, batch_size, seed

    def epoch(self, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler, *,
              epoch: int, step: int, logger: MetricsLogger | None, log_every: int) -> tuple[dict[str, Any], int]:
        head = self.model.head
        head.train()
        x, y = self.train
        order = torch.randperm(len(y), generator=loader_generator(epoch_seed(self.seed, epoch))).to(y.device)
        t0 = time.perf_counter()
        tot_loss = tot_acc = 0.0
        for i in range(0, len(y), self.batch):
            idx = order[i:i + self.batch]
            logits = head(x[idx])
            loss = F.cross_entropy(logits, y[idx])
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

    def warm_start(self, epochs: int, lr: float, weight_decay: float) -> dict[str, Any]:
        """Train the head alone for ``epochs`` (AdamW, cosine to zero, unlogged): fine-tuning's LP-FT warm start."""
        from neuromoco.train.engine.loops import build_optimizer, cosine_schedule

        opt = build_optimizer(self.model.head.parameters(), "adamw", lr, weight_decay)
        sched = cosine_schedule(opt, epochs * -(-len(self.train[1]) // self.batch))
        summary: dict[str, Any] = {}
        for epoch in range(1, epochs + 1):
            summary, _ = self.epoch(opt, sched, epoch=epoch, step=0, logger=None, log_every=1)
        return summary

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        x, y = self.test
        logits = self.model.head(x)
        return {"top1": float((logits.argmax(-1) == y).float().mean()),
                "loss": float(F.cross_entropy(logits, y)), "n": len(y)}
