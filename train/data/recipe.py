"""The dataset recipe a model card records, so that ``deploy`` frames the same data from the card alone.

``{"name", "kind", "sensor_size", "time_unit", "framing", "framing_version"}`` and, for a recordings folder,
``sensor_size_inferred`` (true: the size is max x/y + 1 of its events, not a known one, and a later recording
reaching further is refused saying so). The exporter adds ``time_steps``, ``downsample`` and ``split``;
:func:`neuromoco.train.data.provider.load_frames` reads it back.
"""

from __future__ import annotations

from typing import Any

from neuromoco.train.data.framing import FRAMING_VERSION
from neuromoco.train.data.registry import get_spec, is_folder_name

FRAMING = "event counts in T equal time bins over each sample's span (tonic ToFrame n_time_bins, tail in the last)"


def dataset_kind(name: str) -> str:
    """"folder" (own recordings), "tonic" (``tonic:ClassName``) or "registry" (a named dataset)."""
    return "folder" if is_folder_name(name) else "tonic" if name.startswith("tonic:") else "registry"


def dataset_recipe(name: str, sensor_size=None, time_unit: str | None = None,
                   sensor_inferred: bool = False) -> dict[str, Any]:
    """What identifies the data and its preprocessing, minus T and downsampling (see module docstring)."""
    kind = dataset_kind(name)
    spec = get_spec(name, sensor_size=sensor_size, time_unit=time_unit, sensor_inferred=sensor_inferred)
    unit, own = "us", {}
    if kind == "folder":
        from neuromoco.train.data.folder import open_folder

        folder = open_folder(name, sensor_size, time_unit, sensor_inferred)
        unit, own = folder.time_unit, {"sensor_size_inferred": folder.sensor_inferred}
    return {"name": spec.name, "kind": kind, "sensor_size": [int(v) for v in spec.sensor_size], **own,
            "time_unit": unit, "framing": FRAMING, "framing_version": FRAMING_VERSION}
