"""NeuroMoCo: momentum-contrast self-supervision for spiking encoders with the MixInfoNCE loss."""

from neuromoco.train.moco.builder import MoCo, ProjectedEncoder, Projector
from neuromoco.train.moco.loss import InfoNCE, MixInfoNCE, contrastive_logits, temporal_features

__all__ = [
           "InfoNCE",
           "MixInfoNCE",
           "MoCo",
           "ProjectedEncoder",
           "Projector",
           "contrastive_logits",
           "temporal_features",
]
