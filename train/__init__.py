"""NeuroMoCo training: event data, Norse SNN encoders, MoCo with MixInfoNCE, downstream tasks, NIR export."""

__version__ = "0.1.0"
