"""The CPU training runtime keeps freed memory for reuse (glibc mallopt), unless NEUROMOCO_KEEP_FREED_MEMORY=0."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import json, os
from neuromoco.train.engine.runtime import make_runtime
rt = make_runtime("cpu", "off")
print(json.dumps(rt.describe()["allocator"]))
"""


@pytest.mark.parametrize("env,expected", [({}, "glibc, freed memory kept"), ({"NEUROMOCO_KEEP_FREED_MEMORY": "0"},
                                                                            "system default")])
def test_cpu_runtime_states_what_the_allocator_does(env: dict[str, str], expected: str) -> None:
    import os

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's mallopt: Linux only")
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout
