"""Quantization-aware training onto the Loihi 2 weight grid of the Lava fixed-point plan (``--qat loihi``).

Laid out like ``torch.ao.quantization``: an observer picks the grid, fake-quantization rounds onto it in the
forward pass with straight-through gradients, and a projection puts the exported weights on it.

============================  ====================================================================
module                        job
============================  ====================================================================
``config``                    :class:`QATConfig`: the options, from the command line in one place
``weighted``                  the classifier's conv / linear layers as the exported graph sees them
``grid``                      one layer's grid; fake-quantization of weights and biases onto it
``observer``                  the grid of every layer, read off the compiled fixed-point plan
``fake_quant``                :class:`LoihiQAT`: the classifier's forward pass on the grid
``calibrate``                 BatchNorm statistics re-estimated once before QAT, then frozen
``project``                   the export projection: trained weights onto the plan's grid
``thresholds``                thresholds lifted off the grid at export (no voltage ties)
============================  ====================================================================

The grid is not re-derived here. The observer exports the current model the way ``model.nir`` is written
(BatchNorm folded with its running statistics, by :mod:`neuromoco.train.export.bn_fold`), compiles it with
the Lava target's own :func:`~neuromoco.deploy.loihi.compile.compile_graph` in fixed point and reads the
scale ``sigma`` of every neuron; the forward pass then rounds ``w * sigma`` with
:func:`~neuromoco.deploy.loihi.fixed_point.split_weights`, the function the plan quantizes with. So training
and export share one definition of the grid: 8-bit mantissas (even for mixed-sign connections), one exponent
per connection, or two 8-bit pieces with ``weight_bits=16``; per-neuron or per-layer scales.

The forward pass is the exported network: every conv / linear layer uses its BatchNorm-folded weight (the
BatchNorm statistics are re-estimated on the training set once, then frozen; its gamma and beta still
train), fake-quantized per output channel. Three details make the exported weights lie on the plan's grid
exactly (plan ``rel_weight_error`` ~1e-8, float32 rounding):

* the grid's largest mantissa is 254 on both sides (Lava allows -256 for mixed signs, but a weight there
  would become the row's largest and move its scale);
* per-neuron scales: a conv's output neurons at the border miss some kernel taps, and their scale follows
  the largest weight they do see. The weights of an output channel are therefore clipped to the largest
  magnitude among the taps that every output position sees (the kernel centre with 'same' padding), so all
  neurons of a channel get one scale and one grid;
* every spiking neuron's ``sigma * v_threshold`` is made an integer (``sigma`` rounded up, so the row's
  largest weight clips onto the top mantissa and the plan computes that very ``sigma``): the threshold
  mantissa ``round(sigma * vth)`` is then exact instead of off by up to ``0.5 / sigma``.

Decays are 12-bit in the plan and dt/tau = 0.5 is exact there. Where the 24-bit state bound lowers a scale,
the export projection iterates (:mod:`neuromoco.train.qat.project`); ``LoihiQAT.report["limited_rows"]``
counts rows whose scale differs within a channel (0 once the plan shares it).
"""

from __future__ import annotations

from neuromoco.train.qat.calibrate import calibrate_batchnorm
from neuromoco.train.qat.config import QAT_CHOICES, QATConfig
from neuromoco.train.qat.fake_quant import LoihiQAT
from neuromoco.train.qat.project import PROJECTION_ROUNDS, project_state_dict
from neuromoco.train.qat.thresholds import THRESHOLD_MARGIN, lift_thresholds, same_integers

__all__ = [
    "PROJECTION_ROUNDS",
    "QAT_CHOICES",
    "THRESHOLD_MARGIN",
    "LoihiQAT",
    "QATConfig",
    "calibrate_batchnorm",
    "lift_thresholds",
    "project_state_dict",
    "same_integers",
]
