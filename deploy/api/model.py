"""A deployable model: a NIR graph (or a folder written by ``deploy export``) with its model card."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from neuromoco.errors import UserError

if TYPE_CHECKING:
    import nir
    import numpy as np

    from neuromoco.deploy.card import ModelCard


def resolve_card(model: Path, card: str | Path | None = None, dt: float | None = None,
                 dataset: str | None = None) -> ModelCard:
    """The model card of ``model`` (a ``.nir`` file or an exported folder), with ``dt`` applied.

    Looked up in this order: ``card``; ``model_card.json`` in an exported folder; ``X.card.json`` or
    ``model_card.json`` beside the graph; else, for a frames ``.npz`` ``dataset`` and ``dt``, a card made
    from the frames' shape.
    """
    from neuromoco.deploy.card import CARD_NAME, ModelCard
    from neuromoco.deploy.datasets import load_npz_frames

    if card:
        path = Path(card)
    else:
        path = model / CARD_NAME if model.is_dir() else ModelCard.beside(model)
    if card or path.exists():
        c = ModelCard.load(path)
        if dt is not None:
            c.dt = float(dt)
        return c
    if dataset and str(dataset).endswith(".npz") and dt:
        frames, _ = load_npz_frames(dataset, 1)
        return ModelCard(input_shape=list(frames.shape[2:]), time_steps=int(frames.shape[1]), dt=float(dt),
                         source=f"the frames file {dataset} (no model card)")
    raise UserError(f"no model card for {model} (looked for {path}); pass --card, or a frames .npz with "
                    "--dataset and the time step with --dt")


@dataclass
class Model:
    """A NIR graph, checked, with the model card that says how to feed it (input shape, time steps, ``dt``,
    dataset recipe). ``graph`` is None for a folder written by :func:`~neuromoco.deploy.api.artefact`: such a
    model runs only on the target that wrote it (its artefact is used as it is)."""

    path: Path
    card: ModelCard
    graph: nir.NIRGraph | None

    @classmethod
    def load(cls, path: str | Path, card: str | Path | ModelCard | None = None, *, dt: float | None = None,
             dataset: str | None = None) -> Model:
        """Load and check ``path`` (a ``.nir`` file or an exported folder) and find its card as ``deploy`` does.

        ``card``: a card file or a :class:`~neuromoco.deploy.card.ModelCard` (default: ``X.card.json`` or
        ``model_card.json`` beside the graph); ``dt`` overrides the card's Euler step; ``dataset`` (a frames
        ``.npz``) with ``dt`` stands in for a missing card, as ``deploy --dataset F.npz --dt S`` does.
        """
        from neuromoco.deploy.card import ModelCard

        p = Path(path)
        if not p.exists():
            raise UserError(f"model not found: {p}")
        if isinstance(card, ModelCard):
            c = card
            if dt is not None:
                c.dt = float(dt)
        else:
            c = resolve_card(p, card, dt, dataset)
        graph = None
        if p.is_file():
            from neuromoco.deploy.graph import load_graph

            graph = load_graph(p, input_shape=c.input_shape, shape_source=c.source)
        return cls(p, c, graph)

    def samples(self, split: str = "test", *, dataset: str | None = None, root: str | None = None,
                limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Frames ``[N, T, *input_shape]`` (float32) and labels ``[N]`` of the model card's dataset (or ``dataset``:
        a name or a frames ``.npz``), framed as the card says the model was trained on: what the jobs run on
        when given no frames. ``split``: ``train``, ``test`` or ``all`` (several joined with commas)."""
        from neuromoco.deploy.api.samples import load_samples

        return load_samples(self.card, dataset, split, root, limit)

    def require_graph(self, job: str) -> nir.NIRGraph:
        """The graph, or a one-line error for an exported folder where ``job`` needs the graph itself."""
        if self.graph is None:
            raise UserError(f"{job} needs a .nir graph; {self.path} is an exported folder")
        return self.graph

    def __repr__(self) -> str:
        kind = "graph" if self.graph is not None else "exported folder"
        return (f"Model({str(self.path)!r}, {kind}, input_shape={self.card.input_shape}, "
                f"time_steps={self.card.time_steps}, dt={self.card.dt})")


def as_model(model: Model | str | Path) -> Model:
    """``model`` itself, or the model at a path (:meth:`Model.load` with the card beside it): what every job takes."""
    return model if isinstance(model, Model) else Model.load(model)
