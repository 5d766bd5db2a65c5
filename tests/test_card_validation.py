"""A model card is checked when it is loaded: a field that cannot describe the graph's input is refused in one
line naming the card, the field and its value; the QAT options are read through one typed accessor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neuromoco.deploy.card import ModelCard
from neuromoco.errors import UserError

GOOD = {"input_shape": [2, 34, 34], "time_steps": 8, "dt": 0.001,
        "dataset": {"name": "embedded", "time_steps": 8, "downsample": 1, "sensor_size": [34, 34, 2]}}


def _write(tmp_path: Path, data: object, name: str = "x.card.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _with(**changes: object) -> dict:
    data = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        if key.startswith("dataset_"):
            data["dataset"][key.removeprefix("dataset_")] = value
        else:
            data[key] = value
    return data


def test_a_good_card_loads(tmp_path):
    card = ModelCard.load(_write(tmp_path, GOOD))
    assert card.input_shape == [2, 34, 34] and card.time_steps == 8 and card.dt == 0.001
    assert card.qat_deploy_options() is None


@pytest.mark.parametrize("changes,message", [
    ({"dt": 0}, "dt must be > 0, got 0"),
    ({"dt": -0.001}, "dt must be > 0, got -0.001"),
    ({"dt": "1ms"}, "dt must be > 0, got '1ms'"),
    ({"dt": True}, "dt must be > 0, got True"),
    ({"time_steps": 0}, "time_steps must be an integer >= 1, got 0"),
    ({"time_steps": 2.5}, "time_steps must be an integer >= 1, got 2.5"),
    ({"input_shape": [2, 0, 34]}, "input_shape[1] must be an integer >= 1, got 0"),
    ({"input_shape": [2, -34, 34]}, "input_shape[1] must be an integer >= 1, got -34"),
    ({"input_shape": []}, "input_shape must be a non-empty list of sizes, got []"),
    ({"input_shape": 68}, "input_shape must be a non-empty list of sizes, got 68"),
    ({"dataset_time_steps": 0}, "dataset.time_steps must be an integer >= 1, got 0"),
    ({"dataset_downsample": 0}, "dataset.downsample must be an integer >= 1, got 0"),
    ({"dataset_sensor_size": [34, 0, 2]}, "dataset.sensor_size must be a list of integers >= 1, got [34, 0, 2]"),
    ({"dataset": ["embedded"]}, "dataset must be an object, got ['embedded']"),
    ({"class_names": "abc"}, "class_names must be a list, got 'abc'"),
    ({"extra": []}, "extra must be an object, got []"),
])
def test_a_bad_card_is_refused_naming_the_card_field_and_value(tmp_path, changes, message):
    path = _write(tmp_path, _with(**changes))
    with pytest.raises(UserError) as err:
        ModelCard.load(path)
    assert str(err.value) == f"model card {path}: {message}"


def test_a_card_that_is_no_object_is_refused(tmp_path):
    with pytest.raises(UserError, match="is not a JSON object"):
        ModelCard.load(_write(tmp_path, [1, 2]))


def test_the_qat_deploy_options_are_read_as_key_value_pairs(tmp_path):
    data = _with(extra={"qat": {"scheme": "loihi", "deploy_options": ["scale=layer", "weight_bits=16",
                                                                       "sign_split=false"]}})
    card = ModelCard.load(_write(tmp_path, data))
    assert card.qat_deploy_options() == {"scale": "layer", "weight_bits": "16", "sign_split": "false"}
    assert ModelCard(input_shape=[4], time_steps=1, dt=1e-3, extra={"qat": {}}).qat_deploy_options() == {}


@pytest.mark.parametrize("qat", [{"deploy_options": ["scale"]}, {"deploy_options": "scale=layer"}, ["scale=layer"]])
def test_malformed_qat_deploy_options_are_refused_on_load(tmp_path, qat):
    path = _write(tmp_path, _with(extra={"qat": qat}))
    with pytest.raises(UserError, match=r"extra\.qat\.deploy_options must be a list of KEY=VALUE strings"):
        ModelCard.load(path)
