"""Helpers shared by the benchmark scripts: paths, machine description, atomic JSON, the cnn3-34 test graph.

Each script is run as ``python benchmarks/NAME.py``, which puts ``benchmarks/`` first on ``sys.path``, so
``from bench_common import ...`` finds this module; importing it puts the repository root on ``sys.path``
too, so ``train`` and ``deploy`` import without an install.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(**extra: Any) -> dict:
    """What a figure depends on: CPU model and count, platform, Python/NumPy/torch versions, load average."""
    info: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
                            "python": platform.python_version(), "numpy": np.__version__}
    if "torch" in sys.modules:  # only when the benchmark uses it: importing torch costs seconds
        info["torch"] = sys.modules["torch"].__version__
    info["load_average_1_5_15min"] = [round(v, 2) for v in os.getloadavg()]
    info.update(extra)
    return info


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON atomically (temporary file + rename), creating the folder."""
    from neuromoco.io import atomic_write_json

    return atomic_write_json(path, obj)


def cnn3_34_graph(seed: int = 0, time_steps: int = 16):
    """The cnn3-34 deployable architecture as a NIR graph with random (He-scaled) weights, and its card.

    conv 16-32-32 (3x3, bias), LIF (tau 2 ms, dt 1 ms: dt/tau = 0.5, threshold 1, reset 0), sum pooling 2x2,
    then a 512 -> 10 readout: ``neuromoco.train.models.deployable.cnn3_34`` with BatchNorm folded into the convs.
    """
    import nir

    from neuromoco.deploy.card import ModelCard

    rng = np.random.default_rng(seed)
    nodes: dict = {"input": nir.Input({"input": np.array([2, 34, 34])})}
    edges, prev = [], "input"

    def add(name, node):
        nonlocal prev
        nodes[name] = node
        edges.append((prev, name))
        prev = name

    c, h = 2, 34
    for i, out in enumerate((16, 32, 32), 1):
        w = rng.normal(0, 3.0 / np.sqrt(c * 9), (out, c, 3, 3)).astype(np.float32)
        add(f"conv{i}", nir.Conv2d((h, h), w, 1, 1, 1, 1, rng.normal(0, 0.1, out).astype(np.float32)))
        shape = (out, h, h)
        add(f"lif{i}", nir.LIF(tau=np.full(shape, 2e-3), r=np.ones(shape), v_leak=np.zeros(shape),
                               v_threshold=np.ones(shape), v_reset=np.zeros(shape)))
        add(f"pool{i}", nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0])))
        c, h = out, h // 2
    add("flatten", nir.Flatten({"input": np.array([c, h, h])}, 0))
    add("head", nir.Affine(rng.normal(0, 1.0 / np.sqrt(c * h * h), (10, c * h * h)).astype(np.float32),
                           np.zeros(10, np.float32)))
    add("output", nir.Output({"output": np.array([10])}))
    graph = nir.NIRGraph(nodes, edges, type_check=False)
    card = ModelCard(input_shape=[2, 34, 34], time_steps=time_steps, dt=1e-3, model="cnn3-34 (random weights)",
                     dataset={"name": "embedded"})
    return graph, card


def find_trained(explicit: str | None) -> Path | None:
    """``explicit`` if given, else the first graph in ``nir_models/`` with a 34x34 card that states an accuracy."""
    from neuromoco.deploy.card import ModelCard

    if explicit:
        return Path(explicit)
    for path in sorted((ROOT / "nir_models").rglob("*.nir")):
        card_path = ModelCard.beside(path)
        if not card_path.exists():  # a fixture without a card is not a candidate
            continue
        card = ModelCard.load(card_path)
        if list(card.input_shape) == [2, 34, 34] and card.accuracy:
            return path
    return None


def model_under_test(explicit: str | None, time_steps: int):
    """``(graph, card, path)``: the trained 34x34 model (see :func:`find_trained`), else the random-weight
    cnn3-34 graph with ``time_steps`` (``path`` None)."""
    from neuromoco.deploy.card import ModelCard
    from neuromoco.deploy.graph import load_graph

    trained = find_trained(explicit)
    if trained is None:
        graph, card = cnn3_34_graph(time_steps=time_steps)
        return graph, card, None
    card = ModelCard.load(ModelCard.beside(trained))
    return load_graph(trained, input_shape=card.input_shape), card, trained


def describe_path(path: Path) -> str:
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def dataset_frames(card, n: int, dataset: str | None, split: str = "test",
                   min_samples: int | None = None) -> tuple[np.ndarray, str]:
    """Frames ``[N, T, C, H, W]`` of the model's dataset split, or seeded sparse events when none loads.

    The dataset is used when it gives at least ``min_samples`` (default ``n``) samples; otherwise Poisson
    event counts at rate 0.1 per pixel and step, seeded by the split. The returned text says which.
    """
    from neuromoco.deploy.datasets import load_frames

    need = n if min_samples is None else min_samples
    try:
        frames, _ = load_frames(card, dataset=dataset, split=split, limit=n)
        if len(frames) >= need:
            return frames[:n], f"dataset {dataset or card.dataset.get('name')!r}, {split} split"
        reason = "too few samples"
    except Exception as err:  # noqa: BLE001 - any failure falls back to synthetic frames
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    rng = np.random.default_rng(0 if split == "test" else 1)
    frames = rng.poisson(0.1, size=(n, card.time_steps, *card.input_shape)).astype(np.float32)
    return frames, f"synthetic Poisson event counts (rate 0.1 per pixel and step); dataset unavailable: {reason}"
