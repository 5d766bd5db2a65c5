"""`train models`: the registered architectures, their parameter counts and whether they deploy."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--classes", type=int, default=10, help="readout size used for the parameter count (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from neuromoco.train.models.registry import describe

    rows = describe(args.classes)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<18} {'input [C,H,W]':<15} {'features':>8} {'params':>12}  deploys  description")
    for r in rows:
        shape = "x".join(str(v) for v in r["input"])
        print(f"{r['name']:<18} {shape:<15} {r['feature_dim']:>8} {r['params']:>12,}  "
              f"{'yes' if r['deployable'] else 'no':<7}  {r['description']}")
    print(f"(parameter counts for the stated input and a {args.classes}-class linear readout; deployable models "
          "export to NIR and run on every deploy target)")
    aliases = [f"{a} = {r['name']}" for r in rows for a in r["aliases"]]
    if aliases:
        print(f"aliases (earlier names, still accepted by --model and in checkpoints): {', '.join(aliases)}")
    return 0
