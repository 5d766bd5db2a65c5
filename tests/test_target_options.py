"""Typed target options: declared once per target, parsed from -o, typos and bad values refused by name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from neuromoco.deploy.cli import main
from neuromoco.deploy.commands.common import parse_option_items
from neuromoco.deploy.targets import TARGETS, get_target, options_class, options_help, with_options
from neuromoco.deploy.targets.options import TargetOptions, option
from neuromoco.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "nir_models" / "sinabs_cnn.nir"


@dataclass(frozen=True)
class _Demo(TargetOptions):
    count: int = option(3, "an int")
    rate: float = option(0.5, "a float")
    mode: Literal["a", "b"] = option("a", "a choice")
    bits: Literal[8, 16] = option(8, "an int choice")
    size: int | Literal["auto"] = option("auto", "an int or auto")
    limit: int | None = option(None, "an optional int")
    names: tuple[str, ...] | None = option(None, "a comma list")


def test_values_are_converted_by_field_type():
    o = _Demo.parse({"count": "7", "rate": "2", "mode": "b", "bits": "16", "size": "4", "limit": "none",
                     "names": "x, y", "record_spikes": "true"})
    assert (o.count, o.rate, o.mode, o.bits, o.size, o.limit, o.names, o.record_spikes) == \
        (7, 2.0, "b", 16, 4, None, ("x", "y"), True)
    assert _Demo.parse({"size": "auto", "names": ""}).size == "auto"
    assert _Demo.parse({"names": ""}).names == ()
    assert _Demo.parse({"count": 5, "bits": 16}).count == 5  # typed Python values pass as they are


@pytest.mark.parametrize("key,value,expected", [
    ("count", "3.5", "expected int"), ("rate", "fast", "expected float"), ("mode", "c", "expected a or b"),
    ("bits", "12", "expected 8 or 16"), ("record_spikes", "maybe", "expected bool"), ("count", True, "int"),
])
def test_bad_values_name_the_expected_type(key, value, expected):
    with pytest.raises(UserError, match=expected):
        _Demo.parse({key: value})


def test_unknown_key_names_the_valid_ones():
    with pytest.raises(UserError, match=r"unknown option 'cuont'.*valid: record_spikes, count, rate"):
        _Demo.parse({"cuont": "1"})


def test_every_target_declares_its_options_and_presets_fit():
    for name, spec in TARGETS.items():
        cls = options_class(name)
        assert issubclass(cls, TargetOptions) and "record_spikes" in cls.fields()
        preset = cls.parse(spec.preset, target=name)
        assert all(getattr(preset, k) == v for k, v in spec.preset.items())
        assert all(": " in line for line in cls.describe())


def test_a_value_contradicting_the_target_name_is_refused():
    _, base = get_target("reference")
    assert with_options("reference", base, {"dtype": "float64"}).dtype == "float64"
    cls = options_class("lava-fixed")
    fixed = cls.parse(TARGETS["lava-fixed"].preset)
    assert with_options("lava-fixed", fixed, {"precision": "fixed"}).precision == "fixed"
    with pytest.raises(UserError, match="lava-fixed fixes precision=fixed"):
        with_options("lava-fixed", fixed, {"precision": "float"})


def test_option_items_go_to_the_targets_that_declare_them():
    names = ["lava-fixed", "onnx-int8"]
    got = parse_option_items(["weight_bits=16", "opset=18", "record_spikes=1", "onnx-int8:batch_size=8"], names)
    assert got == {"lava-fixed": {"weight_bits": "16", "record_spikes": "1"},
                   "onnx-int8": {"opset": "18", "record_spikes": "1", "batch_size": "8"}}
    with pytest.raises(UserError, match="unknown option 'opsett'.*onnx-int8: record_spikes, quantize, opset"):
        parse_option_items(["opsett=12"], names)
    with pytest.raises(UserError, match="names target 'onnx'"):
        parse_option_items(["onnx:opset=12"], names)
    with pytest.raises(UserError, match="not KEY=VALUE"):
        parse_option_items(["opset"], names)


_COMMANDS = {
    "export": ["export", str(MODEL), "--target", "onnx", "--out", "{out}"],
    "run": ["run", str(MODEL), "--target", "onnx", "--out", "{out}"],
    "parity": ["parity", str(MODEL), "--targets", "onnx", "--out", "{out}"],
    "profile": ["profile", str(MODEL), "--target", "onnx", "--out", "{out}"],
}


@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_unknown_option_on_every_command_names_the_valid_keys(command, tmp_path, capsys):
    argv = [a.replace("{out}", str(tmp_path / "out")) for a in _COMMANDS[command]]
    assert main([*argv, "-o", "opsett=12"]) == 2
    err = capsys.readouterr().err
    assert "unknown option 'opsett'" in err and "opset" in err and "keep_float" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_shared_flags_on_every_command(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    for flag in ("-o KEY=VALUE", "--no-progress", "--card", "--dt", "--dataset", "--root", "--calibration"):
        assert flag in text, f"deploy {command} --help lacks {flag}"
    for line in options_help().splitlines()[1:]:  # every target's options are listed
        assert line.strip().split(" ")[0] in text
