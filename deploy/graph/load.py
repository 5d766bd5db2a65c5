"""Reading a ``.nir`` file: a prescan of the HDF5 names unknown node types, then normalising and checking."""

from __future__ import annotations

from pathlib import Path

import nir

from neuromoco.deploy.graph.checks import check_graph
from neuromoco.deploy.graph.normalize import normalize_graph
from neuromoco.deploy.nodes import SUPPORTED_NAMES
from neuromoco.errors import UserError

# Node types the project runs and their parameters are the table in neuromoco.deploy.nodes; anything else
# (Delay, I, ...) is refused by name. These are all the types NIR itself knows:
_NIR_KNOWN = set(getattr(nir.ir, "__all_ir", [])) or {
    "Conv1d", "Conv2d", "Delay", "Flatten", "Input", "NIRGraph", "Output", "Affine", "Linear", "Scale",
    "CubaLI", "CubaLIF", "I", "IF", "LI", "LIF", "AvgPool2d", "SumPool2d", "Threshold"}


def load_graph(path: str | Path, *, check: bool = True, input_shape: list[int] | None = None,
               shape_source: str = "the model card") -> nir.NIRGraph:
    """Read a ``.nir`` file into a normalised graph (sub-graphs inlined, conv input shapes filled in).

    With ``check`` (the default) the graph also passes :func:`check_graph`. Every problem is a one-line
    :class:`UserError`.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"NIR file not found: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a NIR file")
    _prescan(path)
    try:
        graph = nir.read(str(path), type_check=False)
    except Exception as err:  # noqa: BLE001 - nir raises assorted errors on malformed content
        raise UserError(f"{path}: cannot read the NIR graph ({type(err).__name__}: {_one_line(err)})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise UserError(f"{path}: the file holds a single {type(graph).__name__} node, not a NIR graph")
    graph = normalize_graph(graph)
    if check:
        check_graph(graph, input_shape=input_shape, shape_source=shape_source)
    return graph


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _prescan(path: Path) -> None:
    """Open the HDF5 file and name any node whose type NIR does not know, before ``nir.read`` asserts."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except Exception as err:  # noqa: BLE001 - h5py raises OSError and others for a damaged file
        raise UserError(f"{path}: not a readable NIR file, truncated or corrupt ({_one_line(err)})") from None
    try:
        with f:
            if "node" not in f:
                raise UserError(f"{path}: not a NIR file (no 'node' group)")

            def walk(group, prefix: str) -> None:
                if "type" not in group:
                    raise UserError(f"{path}: node {prefix or '<root>'} has no type")
                kind = group["type"][()]
                kind = kind.decode("utf8") if isinstance(kind, bytes) else str(kind)
                if kind not in _NIR_KNOWN:
                    raise UserError(f"{path}: node {prefix or '<root>'!r} has unknown type {kind!r} "
                                    f"(supported: {', '.join(SUPPORTED_NAMES)})")
                if kind == "NIRGraph" and "nodes" in group:
                    for name in group["nodes"]:
                        walk(group["nodes"][name], f"{prefix}.{name}" if prefix else name)

            walk(f["node"], "")
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - damaged datasets inside an openable file
        raise UserError(f"{path}: not a readable NIR file, truncated or corrupt ({_one_line(err)})") from None
