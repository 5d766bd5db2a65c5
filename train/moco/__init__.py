"""NeuroMoCo: momentum-contrast self-supervision for spiking encoders with the MixInfoNCE loss."""

from train.moco.builder import MoCo, ProjectedEncoder, Projector
from train.moco.loss import InfoNCE, MixInfoNCE, contrastive_logits, temporal_features

__all__ = [
           "InfoNCE",
           "MixInfoNCE",
           "MoCo",
           "ProjectedEncoder",
           "Projector",
           "contrastive_logits",
           "temporal_features",
]
