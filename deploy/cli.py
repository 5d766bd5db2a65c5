"""`deploy` command line: inspect, export, run, parity, profile, examples."""

from __future__ import annotations

from neuromoco.cli import run_cli

COMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("neuromoco.deploy.commands.inspect", "load and check a NIR graph; print its nodes, shapes and edges"),
    "export": ("neuromoco.deploy.commands.export", "turn a NIR graph into a target's artefact (lava, onnx)"),
    "run": ("neuromoco.deploy.commands.run", "run a NIR graph on a target over a dataset split"),
    "parity": ("neuromoco.deploy.commands.parity", "accuracy and spike parity of targets against the reference"),
    "profile": ("neuromoco.deploy.commands.profile", "synaptic operations, neuron updates and energy per inference"),
    "examples": ("neuromoco.deploy.commands.examples", "list the example NIR graphs shipped with the package, or copy "
                                                       "them to a folder"),
}


def main(argv: list[str] | None = None) -> int:
    return run_cli("deploy", __doc__.splitlines()[0], COMMANDS, argv,
                   interrupted="interrupted (reports and artefacts are each written whole, once their work is "
                               "done: none is left half-written)")


if __name__ == "__main__":
    raise SystemExit(main())
