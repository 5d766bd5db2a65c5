"""A :class:`~.plan.LavaPlan` as one HDF5 file (``lava_network.h5``): JSON metadata plus arrays.

Layout: attribute ``meta`` (format, version, precision, dt, input, every layer's name, kind, shape,
delay, spiking flag and connection metadata -- source, recurrent, weight exponent, added delay -- the
readout's), attribute ``report``; group ``layers/<i>``
with the neuron arrays and ``conns/<j>`` (CSR ``data`` / ``indices`` / ``indptr``, or a kernel's ``weight`` with
its ``stride``, ``pad``, ``in_shape``, ``out_shape`` and optional ``crop`` as attributes); group ``readout``
with ``scale``, optional ``c0`` / ``c1`` and ``conns/<j>``. A connection's added ``delay`` (skip connections)
is optional: files written before it existed had none and load with 0, which is what they ran with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import scipy.sparse as sp

from neuromoco.deploy.loihi.kernel import Kernel
from neuromoco.deploy.loihi.plan import Conn, LavaPlan, Layer, Readout
from neuromoco.errors import UserError
from neuromoco.io import atomic_write, atomic_write_json

NETWORK_NAME = "lava_network.h5"  # the plan file of an export folder
REPORT_NAME = "lava_export.json"  # its report: layers, processes, delays, quantization errors
FORMAT = "neuromoco-lava-plan"
FORMAT_VERSION = 2  # 2: connections may be kernels; version 1 files (matrices only) still load
READABLE_VERSIONS = (1, 2)
LAYER_ARRAYS = ("du", "dv", "vth", "bias_mant", "bias_exp", "b0", "b1", "v0", "v_reset")


def save_plan(plan: LavaPlan, path: str | Path) -> Path:
    """Write the plan as one HDF5 file (atomically): JSON metadata plus arrays."""
    import h5py

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["meta"] = json.dumps(_meta(plan))
            f.attrs["report"] = json.dumps(plan.report, default=_jsonable)
            for i, lay in enumerate(plan.layers):
                grp = f.create_group(f"layers/{i}")
                for k in LAYER_ARRAYS:
                    _write_array(grp, k, np.asarray(getattr(lay, k), dtype=np.float64))
                _write_array(grp, "scale", _per_value(lay.scale, lay.size))
                for j, c in enumerate(lay.conns):
                    _write_conn(grp.create_group(f"conns/{j}"), c)
            ro = f.create_group("readout")
            ro.create_dataset("scale", data=_per_value(plan.readout.scale, plan.readout.size))
            for k in ("c0", "c1"):
                if getattr(plan.readout, k) is not None:
                    ro.create_dataset(k, data=getattr(plan.readout, k))
            for j, c in enumerate(plan.readout.conns):
                _write_conn(ro.create_group(f"conns/{j}"), c)

    return atomic_write(path, write)


def write_plan_folder(plan: LavaPlan, out_dir: Path) -> Path:
    """An export folder: the plan as :data:`NETWORK_NAME` and its report as :data:`REPORT_NAME`; returns the plan
    file. What ``deploy export`` writes for every target that runs a plan (``lava``, ``reference-fixed``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = save_plan(plan, out_dir / NETWORK_NAME)
    atomic_write_json(out_dir / REPORT_NAME, {"network": NETWORK_NAME, **plan.report})
    return path


def plan_summary(report: Path) -> list[str]:
    """The layers, delays, processes and (fixed point) weight errors of an exported plan, from its report
    (``[]`` when the folder has none)."""
    if not report.exists():
        return []
    rep = json.loads(report.read_text())
    kind = "floating" if rep["precision"] == "float" else "fixed"
    lines = [f"{kind} point, {len(rep['layers'])} neuron layers, depth {rep['depth']} steps"]
    for lay in rep["layers"]:
        line = (f"{lay['name']:<16} {lay['type']:<8} {lay['neurons']:>7} neurons  delay {lay['delay']}  "
                f"{lay['process']}")
        q = lay.get("quantization")
        if q:
            errs = [c.get("rel_weight_error", 0.0) for c in q["connections"].values()]
            line += f"  weight error {max(errs or [0.0]):.2%}"
            if "vth_mantissa" in q:
                line += f"  vth {q['vth_mantissa'][1]}"
        if lay.get("process_reason") and lay["process"] != "LIFReset":
            line += f"  ({lay['process_reason']})"
        if _added_delays(lay):
            line += f"  {_added_delays(lay)}"
        lines.append(line)
        lines += [f"{'':<16} not exact: {note}" for note in (q or {}).get("notes", [])]  # what no scale maps
    if _added_delays(rep.get("readout", {})):
        lines.append(f"{'(readout)':<16} {_added_delays(rep['readout'])}")
    lines.append("quantization and process details: lava_export.json" if rep["precision"] == "fixed"
                 else "details: lava_export.json")
    return lines


def _added_delays(entry: dict) -> str:
    """``added delay: lif1 +2`` for the connections of a report entry padded by a synaptic delay (a skip
    connection's short path, a ``DelaySparse``), or ``""``."""
    late = [f"{c['source']} +{c['added_delay']}" for c in entry.get("connections", []) if c.get("added_delay")]
    return f"added delay: {', '.join(dict.fromkeys(late))}" if late else ""


def load_plan(path: str | Path) -> LavaPlan:
    """Read a plan written by :func:`save_plan` (a clear error for anything else)."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise UserError(f"Lava network file not found: {path}") from None
    except OSError as err:
        raise UserError(f"{path} is not a readable Lava network file ({err})") from None
    with f:
        try:
            meta = json.loads(f.attrs["meta"])
        except KeyError:
            raise UserError(f"{path} is not a Lava network written by `deploy export --target lava`") from None
        if meta.get("format") != FORMAT or meta.get("version") not in READABLE_VERSIONS:
            raise UserError(f"{path}: unknown Lava network format {meta.get('format')!r} "
                            f"version {meta.get('version')!r}")
        layers = [_read_layer(f[f"layers/{i}"], lm) for i, lm in enumerate(meta["layers"])]
        rm = meta["readout"]
        ro = f["readout"]
        readout = Readout(rm["delay"], tuple(rm["shape"]), rm["direct"], _read_conns(ro, rm["conns"]),
                          ro["c0"][()] if "c0" in ro else None, ro["c1"][()] if "c1" in ro else None,
                          ro["scale"][()])
        return LavaPlan(meta["precision"], meta["dt"], meta["input_name"], tuple(meta["input_shape"]), layers,
                        readout, meta["input_scale"], meta["input_max"], json.loads(f.attrs["report"]))


def _meta(plan: LavaPlan) -> dict[str, Any]:
    return {"format": FORMAT, "version": FORMAT_VERSION, "precision": plan.precision, "dt": plan.dt,
            "input_name": plan.input_name, "input_shape": list(plan.input_shape),
            "input_scale": plan.input_scale, "input_max": plan.input_max,
            "layers": [{"name": lay.name, "kind": lay.kind, "shape": list(lay.shape),
                        "delay": lay.delay, "spiking": lay.spiking,
                        "conns": [_conn_meta(c) for c in lay.conns]} for lay in plan.layers],
            "readout": {"delay": plan.readout.delay, "shape": list(plan.readout.shape),
                        "direct": plan.readout.direct,
                        "conns": [_conn_meta(c) for c in plan.readout.conns]}}


def _conn_meta(c: Conn) -> dict[str, Any]:
    return {"source": c.source, "recurrent": c.recurrent, "weight_exp": c.weight_exp, "report": c.report,
            "delay": int(c.delay)}


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _per_value(scale: np.ndarray | float, n: int) -> np.ndarray:
    """A scale (one per layer or one per value) as ``n`` float64 values."""
    return np.broadcast_to(np.asarray(scale, dtype=np.float64), (n,))


def _write_csr(grp: Any, m: sp.spmatrix) -> None:
    m = sp.csr_matrix(m)
    grp.create_dataset("data", data=m.data, compression="gzip")
    grp.create_dataset("indices", data=m.indices, compression="gzip")
    grp.create_dataset("indptr", data=m.indptr, compression="gzip")
    grp.attrs["shape"] = list(m.shape)


def _read_csr(grp: Any) -> sp.csr_matrix:
    return sp.csr_matrix((grp["data"][()], grp["indices"][()], grp["indptr"][()]),
                         shape=tuple(int(v) for v in grp.attrs["shape"]))


def _write_array(grp: Any, name: str, a: np.ndarray) -> None:
    """A per-neuron array, compressed where it is large (mostly one value per layer or channel: a few bytes)."""
    grp.create_dataset(name, data=a, **({"compression": "gzip"} if a.size >= 1024 else {}))


def _write_conn(grp: Any, c: Conn) -> None:
    """A connection's weights: a CSR matrix, or a kernel (``weight`` plus its geometry as attributes)."""
    if c.kernel is None:
        _write_csr(grp, c.matrix)
        return
    k = c.kernel
    grp.create_dataset("weight", data=k.weight, compression="gzip")
    for name in ("stride", "pad", "in_shape", "out_shape"):
        grp.attrs[name] = [int(v) for v in getattr(k, name)]
    if k.crop is not None:
        grp.attrs["crop"] = [int(v) for v in k.crop]


def _read_kernel(grp: Any) -> Kernel:
    def ints(name: str) -> tuple[int, ...]:
        return tuple(int(v) for v in grp.attrs[name])

    # each attribute holds as many ints as its Kernel field (what _write_kernel wrote)
    crop = cast("tuple[int, int]", ints("crop")) if "crop" in grp.attrs else None
    return Kernel(grp["weight"][()], cast("tuple[int, int]", ints("stride")),
                  cast("tuple[int, int, int, int]", ints("pad")), cast("tuple[int, int, int]", ints("in_shape")),
                  cast("tuple[int, int, int]", ints("out_shape")), crop)


def _read_conns(grp: Any, metas: list[dict[str, Any]]) -> list[Conn]:
    out = []
    for j, cm in enumerate(metas):
        g = grp[f"conns/{j}"]
        kernel = _read_kernel(g) if "weight" in g else None
        out.append(Conn(cm["source"], None if kernel is not None else _read_csr(g), cm["recurrent"],
                        cm["weight_exp"], cm.get("report", {}), int(cm.get("delay", 0)), kernel))
    return out


def _read_layer(grp: Any, lm: dict[str, Any]) -> Layer:
    arr = {k: grp[k][()] for k in (*LAYER_ARRAYS, "scale")}
    return Layer(lm["name"], lm["kind"], tuple(lm["shape"]), lm["delay"], lm["spiking"],
                 conns=_read_conns(grp, lm["conns"]), **arr)
