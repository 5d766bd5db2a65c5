"""Deploy from Python: load a NIR graph, run it on a target, compare targets, profile energy, export artefacts.

The same jobs as ``deploy run / parity / profile / export`` (the commands are thin layers over these functions),
returning objects instead of writing files::

    from neuromoco.deploy.api import Model, parity, profile, run

    model = Model.load("model.nir")                   # the model card is found beside the graph
    result = run(model, frames, target="onnx")        # frames: [N, T, *input_shape], an .npz or a dataset name
    report = parity(model, frames, targets=["onnx", "reference-fixed"])
    report.passed, report.verdicts; print(report.table()); report.write("parity_out")
    energy = profile(model, frames, target="reference")

Every job takes a :class:`Model` or the path of a ``.nir`` graph (or of a folder written by :func:`export`).
Target options are keyword arguments (``quantize="int8"``) or the target's typed options class
(:mod:`neuromoco.deploy.targets`), checked with the same messages as ``-o KEY=VALUE``. Errors a user can fix are
:class:`~neuromoco.errors.UserError` with one line.
"""

from __future__ import annotations

from neuromoco.deploy.api.artefact import export
from neuromoco.deploy.api.comparison import ParityReport, parity
from neuromoco.deploy.api.execution import run
from neuromoco.deploy.api.model import Model
from neuromoco.deploy.api.profiling import EnergyReport, profile
from neuromoco.deploy.result import RunResult

__all__ = ["EnergyReport", "Model", "ParityReport", "RunResult", "export", "parity", "profile", "run"]
