"""Loihi 2's fixed-point formats as Lava 0.10's bit-accurate models hold them: the one definition.

The plan's quantization (:mod:`.fixed_point`), the ``reference-fixed`` emulator's integer arithmetic and
quantization-aware training all read these numbers from here.
"""

from __future__ import annotations

#: neuron state (current ``u`` and voltage ``v``): 24-bit signed; Lava's ``max_uv_val``
UV_BITS = 24
MAX_UV = 1 << (UV_BITS - 1)
STATE_MAX = MAX_UV
#: decays: 12-bit factors, ``x * (4096 - d) >> 12``; Lava adds 1 to ``du`` (so a full decay is representable)
DECAY_SHIFT = 12
DECAY_UNITY = 1 << DECAY_SHIFT
DS_OFFSET = 1
DM_OFFSET = 0
#: the synapses' ``a_out`` enters the current shifted left by 6; the threshold is compared shifted left by 6
ACT_SHIFT = 6
VTH_SHIFT = 6
#: threshold mantissa: 17 bits
VTH_MAX = (1 << 17) - 1
#: 8-bit weight mantissas: mixed-sign weights lose their lowest bit (even values in [-256, 254])
MANT_MIXED = 254
MANT_SINGLE = 255
#: weight exponents a synapse process takes (4-bit signed); a negative one shifts the synapse's sum down
#: (``>>``, flooring towards minus infinity)
WEIGHT_EXP_MIN = -8
WEIGHT_EXP_MAX = 7
#: bias: 13-bit signed mantissa, 3-bit exponent
BIAS_MANT_MAX = 4095
BIAS_EXP_MAX = 7
