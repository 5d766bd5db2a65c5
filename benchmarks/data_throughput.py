"""Loading throughput of the embedded dataset (samples/s), written as JSON.

Measured in one process on one core (torch and numpy single-threaded), over the train split:
  build_seconds          generating the embedded dataset from scikit-learn's digits (once per seed)
  cold                   framing every sample from its events, no cache (what an uncached epoch costs)
  first_epoch_filling    the first epoch with the cache on: framing plus one cache file written per sample
  build_cache            FramedDataset.build_cache(): frame all samples and write the packed cache at once
  cached                 an epoch read from the packed cache (what later epochs cost)
  cached_dataloader      the same through a DataLoader (batch 64, no workers), collation included
  two_view               make_contrastive_dataset(): two augmented views per sample, framed

    python benchmarks/data_throughput.py [--out benchmarks/results/data_throughput.json] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import RESULTS, machine_info, now, write_json


def _rate(n: int, fn) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RESULTS / "data_throughput.json"))
    parser.add_argument("--repeats", type=int, default=3, help="repetitions per measurement (median reported)")
    parser.add_argument("--time-steps", type=int, default=16)
    parser.add_argument("--root", help="data folder to use (default: a fresh temporary one)")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    torch.set_num_threads(1)
    from neuromoco.train.data import build_embedded, get_dataset, make_contrastive_dataset
    from neuromoco.train.data.embedded import EmbeddedDigits
    from neuromoco.train.data.registry import embedded_path

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else Path(tmp)
        start = time.perf_counter()
        build_embedded(root, force=not embedded_path(root).exists() or args.root is None, verbose=False)
        build_seconds = time.perf_counter() - start
        events = EmbeddedDigits("all", root)
        counts = np.diff(events._data["offsets"])
        t_steps = args.time_steps
        results: dict[str, list[float]] = {k: [] for k in (
            "cold", "first_epoch_filling", "build_cache", "cached", "cached_dataloader", "two_view")}
        n = None
        for r in range(args.repeats):
            cache_root = root / f"bench-cache-{r}"
            uncached = get_dataset("embedded", "train", root, time_steps=t_steps, cache=False)
            n = len(uncached)
            results["cold"].append(_rate(n, lambda ds=uncached, n=n: [ds[i] for i in range(n)]))

            lazy = get_dataset("embedded", "train", root, time_steps=t_steps)
            lazy.cache.folder = cache_root / "lazy"
            results["first_epoch_filling"].append(_rate(n, lambda ds=lazy, n=n: [ds[i] for i in range(n)]))

            bulk = get_dataset("embedded", "train", root, time_steps=t_steps)
            bulk.cache.folder = cache_root / "bulk"
            results["build_cache"].append(_rate(n, bulk.build_cache))
            results["cached"].append(_rate(n, lambda ds=bulk, n=n: [ds[i] for i in range(n)]))
            loader = torch.utils.data.DataLoader(bulk, batch_size=64, shuffle=True, num_workers=0)
            results["cached_dataloader"].append(_rate(n, lambda dl=loader: list(dl)))

            views = make_contrastive_dataset("embedded", "train", root, time_steps=t_steps, seed=r)
            results["two_view"].append(_rate(n, lambda ds=views, n=n: [ds[i] for i in range(n)]))

    report = {
        "benchmark": "embedded dataset loading throughput",
        "unit": "samples per second (median of repeats), one process, one thread",
        "split": "train", "samples": n, "time_steps": t_steps, "frame_shape": [t_steps, 2, 34, 34],
        "events_per_sample": {"mean": float(counts.mean()), "min": int(counts.min()), "max": int(counts.max())},
        "build_seconds": round(build_seconds, 2),
        "throughput": {k: round(statistics.median(v), 1) for k, v in results.items()},
        "all_runs": {k: [round(x, 1) for x in v] for k, v in results.items()},
        "machine": machine_info(torch_threads=torch.get_num_threads()),
        "date": now(),
    }
    out = write_json(args.out, report)
    print(json.dumps(report["throughput"], indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
