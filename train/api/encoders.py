"""Bring your own encoder: any spiking network as a NeuroMoCo encoder ``[T, B, C, H, W] -> [T, B, D]``.

NeuroMoCo needs the features of every time step (MixInfoNCE mixes a per-step and a time-averaged loss), for a
whole sequence at once. A network that already maps ``[T, B, ...]`` to ``[T, B, D]`` (the project's layers,
plain PyTorch in multi-step form) is an encoder as it is. One that steps one time step at a time (snnTorch,
Norse cells and ``SequentialState``) or keeps a state between calls (SpikingJelly) goes through
:class:`SequenceEncoder`, which steps it over T, resets its state before every sequence and flattens each
step's output to ``[B, D]``; :func:`norse_encoder`, :func:`snntorch_encoder` and :func:`spikingjelly_encoder`
set it up the way each library works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class SequenceEncoder(nn.Module):
    """Adapter: ``net`` as an encoder of whole sequences, ``[T, B, ...] -> [T, B, D]``.

    net: the network. step_mode: ``"single"`` (default) calls it once per time step on ``[B, ...]``;
    ``"multi"`` once on the whole ``[T, B, ...]`` (SpikingJelly's multi-step mode). stateful: the network
    takes and returns its state, ``y, state = net(x_t, state)`` with ``state=None`` at the start (Norse's
    ``SequentialState`` and cells); otherwise it keeps its state inside (snnTorch's ``init_hidden=True``).
    reset: called with ``net`` before every sequence, to clear the state a stateful-inside network kept from
    the last one (snnTorch, SpikingJelly). A tuple output (snnTorch's ``output=True``: spikes, membrane) gives
    its first element. Each step's output is flattened to ``[B, D]``.

    Its parameters and buffers are ``net``'s (under ``net.``), so checkpoints hold the network's own state
    dict; ``feature_dim`` is found by a dry run where needed (:func:`~neuromoco.train.moco.builder.infer_feature_dim`).
    """

    def __init__(self, net: nn.Module, *, step_mode: str = "single", stateful: bool = False,
                 reset: Callable[[nn.Module], Any] | None = None) -> None:
        super().__init__()
        if step_mode not in ("single", "multi"):
            raise ValueError(f"step_mode must be 'single' or 'multi', got {step_mode!r}")
        if stateful and step_mode == "multi":
            raise ValueError("stateful=True steps the network one time step at a time: use step_mode='single'")
        self.net = net
        self.step_mode, self.stateful = step_mode, bool(stateful)
        self._reset = reset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [T, B, ...]`` -> features ``[T, B, D]``."""
        if self._reset is not None:
            self._reset(self.net)
        t, b = x.shape[:2]
        if self.step_mode == "multi":
            return _first(self.net(x)).reshape(t, b, -1)
        state: Any = None
        outs = []
        for step in range(t):
            if self.stateful:
                y, state = self.net(x[step], state)
            else:
                y = self.net(x[step])
            outs.append(_first(y).reshape(b, -1))
        return torch.stack(outs)

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode!r}, stateful={self.stateful}"


def _first(y: Any) -> torch.Tensor:
    """The output tensor of a step (the first element of a tuple output)."""
    while isinstance(y, (tuple, list)):
        y = y[0]
    return y


def norse_encoder(net: nn.Module) -> SequenceEncoder:
    """A Norse network that steps one time step at a time and passes its state (``norse.torch.SequentialState``
    of cells such as ``LIFBoxCell``, or one cell) as an encoder. A Norse network in multi-step form
    (``LIFBox`` on ``[T, B, ...]``, ``Lift``) needs no adapter if it returns a tensor."""
    return SequenceEncoder(net, stateful=True)


def reset_snntorch(net: nn.Module) -> None:
    """Clear the hidden state of every snnTorch neuron in ``net`` (each one's ``reset_mem``): the form of
    ``snntorch.utils.reset`` local to ``net`` (that one resets every neuron instance in the process)."""
    for m in net.modules():
        fn = getattr(m, "reset_mem", None)
        if callable(fn) and type(m).__module__.startswith("snntorch"):
            fn()


def snntorch_encoder(net: nn.Module) -> SequenceEncoder:
    """An snnTorch network (layers and neurons built with ``init_hidden=True``, usually in ``nn.Sequential``)
    as an encoder: stepped over T, its neurons' state cleared before every sequence."""
    return SequenceEncoder(net, reset=reset_snntorch)


def spikingjelly_encoder(net: nn.Module) -> SequenceEncoder:
    """A SpikingJelly (``spikingjelly.activation_based``) network in multi-step mode
    (``functional.set_step_mode(net, "m")``) as an encoder: one call on ``[T, B, ...]``, its state cleared by
    ``functional.reset_net`` before every sequence."""
    from spikingjelly.activation_based import functional

    return SequenceEncoder(net, step_mode="multi", reset=functional.reset_net)
