"""``neuromoco.__all__`` is the public API, pinned: adding, renaming or dropping a name is a deliberate edit here.

Every name resolves (``neuromoco`` re-exports lazily), has a docstring, and the list is what
``python -c "import neuromoco; print(neuromoco.__all__)"`` prints.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import neuromoco

PUBLIC = [
    # train: pre-train any encoder with NeuroMoCo, fine-tune, probe, export (neuromoco.train.api)
    "ClassifyResult", "ExportResult", "MoCoOptions", "NeuroMoCo", "PretrainResult", "Recipe", "SequenceEncoder",
    "export_nir", "finetune", "linear_probe", "load_dataset", "norse_encoder", "pretrain", "reset_snntorch",
    "snntorch_encoder", "spikingjelly_encoder", "supervised",
    # deploy: load a NIR graph, run it, compare targets, profile energy, export artefacts (neuromoco.deploy.api)
    "EnergyReport", "Model", "ParityReport", "RunResult", "export", "parity", "profile", "run",
]


def test_all_is_the_pinned_list():
    assert sorted(neuromoco.__all__) == sorted(PUBLIC)
    assert len(set(neuromoco.__all__)) == len(neuromoco.__all__)


def test_every_public_name_resolves_and_says_what_it_does():
    for name in neuromoco.__all__:
        obj = getattr(neuromoco, name)
        assert (obj.__doc__ or "").strip(), f"neuromoco.{name} has no docstring"


def test_the_names_are_the_train_and_deploy_apis():
    import neuromoco.deploy.api as deploy_api
    import neuromoco.train.api as train_api

    assert sorted([*train_api.__all__, *deploy_api.__all__]) == sorted(neuromoco.__all__)
    for api in (train_api, deploy_api):
        for name in api.__all__:
            assert getattr(neuromoco, name) is getattr(api, name), name


def test_python_c_prints_the_list():
    out = subprocess.run([sys.executable, "-c", "import neuromoco; print(neuromoco.__all__)"], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    assert sorted(ast.literal_eval(out.strip())) == sorted(PUBLIC)
