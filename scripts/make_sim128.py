"""Write a 128x128 event dataset, offline and deterministic: a recordings folder of simulated digits.

scikit-learn's 8x8 digits through the project's event-camera simulator on a 128x128 sensor (digit magnified
to --digit-size pixels; see neuromoco.train.data.digits128), one sub-folder per digit holding ``.npy`` event
arrays (x, y, t in microseconds, p), the layout ``--dataset PATH`` reads (docs/datasets.md, "Your own
recordings"; split: the reader's seeded 9:1 per class). The same arguments give the same files.

    python scripts/make_sim128.py --out data/sim128 --samples-per-class 40
    train supervised --dataset data/sim128 --model cnn5-128 -T 4 --qat loihi --out runs/sim128-cnn5
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make_sim128.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--out", required=True, help="the folder to write (its class folders are replaced)")
    p.add_argument("--samples-per-class", type=int, default=40,
                   help="the first N digits of each class in load_digits() (at most 174; default 40)")
    p.add_argument("--seed", type=int, default=0,
                   help="simulator seed: sample i draws from default_rng(i) at 0, default_rng((seed, i)) otherwise")
    p.add_argument("--digit-size", type=float, default=96.0, help="the digit's side on the sensor, pixels")
    p.add_argument("--sensor", type=int, default=128, help="sensor width = height, pixels (default 128)")
    p.add_argument("--force", action="store_true", help="rewrite even when the folder already holds this recipe")
    a = p.parse_args(argv)
    if a.samples_per_class < 1:
        p.error("--samples-per-class must be at least 1")

    from neuromoco.train.data.digits128 import ensure_recordings, write_recordings

    try:
        if a.force:
            write_recordings(a.out, a.samples_per_class, a.seed, a.digit_size, a.sensor)
        else:
            ensure_recordings(a.out, a.samples_per_class, a.seed, a.digit_size, a.sensor)
    except ValueError as err:
        print(f"make_sim128.py: {err}", file=sys.stderr)
        return 2
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
