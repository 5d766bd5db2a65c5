"""`deploy` command line: inspect, export, run, parity, profile."""

from __future__ import annotations

from deploy.lazycli import run_cli

COMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("deploy.commands.inspect", "load and check a NIR graph; print its nodes, shapes and edges"),
    "export": ("deploy.commands.export", "turn a NIR graph into a target's artefact (lava, onnx)"),
    "run": ("deploy.commands.run", "run a NIR graph on a target over a dataset split"),
    "parity": ("deploy.commands.parity", "accuracy and spike parity of targets against the reference"),
    "profile": ("deploy.commands.profile", "synaptic operations, neuron updates and energy per inference"),
}


def main(argv: list[str] | None = None) -> int:
    return run_cli("deploy", __doc__.splitlines()[0], COMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
