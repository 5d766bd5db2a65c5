"""Which exact fast kernels the emulator may use, passed to it as one value instead of module switches.

Every kernel computes the integers of :mod:`.definition` (the tests run every shipped graph both ways);
a :class:`Strategy` only says which of them the executor may pick. :data:`DEFAULT` is what a run uses;
:data:`DEFINITION` runs the plain integer step of :mod:`.definition` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Strategy:
    """The fast paths allowed, each exact where the executor takes it (bounds decide that, not this)."""

    #: False: the plain integer step of :mod:`.definition` (step by step, int64 synapses); every field below
    #: is then unused
    fast: bool = True
    #: merge sign-split pairs, share weights several sources read, and run kernels / conv-shaped matrices as
    #: convolutions plus a border correction (:mod:`.conv_structure`); False: one product per plan connection
    structured: bool = True
    #: a convolution's border correction as gathered windows or rows (:class:`.conv_structure.BorderOp`);
    #: False: as a sparse product
    border_ops: bool = True
    #: dense maps (and border rows) as int8 matmuls with int32 sums where the values fit (:mod:`.int8`)
    int8: bool = True
    #: spike inputs summed synapse by synapse (``index_add_``) where sparse enough (:attr:`event_cost`)
    event_driven: bool = True
    #: an event's synapse costs about this many multiply-adds of the matrix product (0: always event-driven)
    event_cost: float = 40.0
    #: synapses per ``index_add_`` of the event-driven product
    event_chunk: int = 1 << 22
    #: a layer with no current memory (``du = 4095``) and no recurrent input whose ``|a << 6|`` cannot wrap
    #: runs as a few in-place passes per step (:func:`.neurons.run_memoryless`)
    memoryless: bool = True
    #: such a layer's activation is computed this many float32 bytes at a time (used while in cache)
    memoryless_chunk_bytes: int = 4 << 20
    #: a convolution's output bytes per ``conv2d`` call on the CPU (:meth:`.conv_structure.ConvOp.apply`)
    conv_chunk_bytes: int = 4 << 20

    def but(self, **changes: object) -> Strategy:
        """This strategy with ``changes`` (field names; a typo is a ``TypeError``)."""
        return replace(self, **changes)  # type: ignore[arg-type]


#: what a run uses: every fast kernel where its bounds allow
DEFAULT = Strategy()
#: the definition alone: :func:`.definition.run`
DEFINITION = Strategy(fast=False)
#: batched over steps but without any optional kernel: float matrix products, the general neuron step
GENERAL = Strategy(border_ops=False, int8=False, event_driven=False, memoryless=False, conv_chunk_bytes=1 << 40)
