"""Spiking encoders built with Norse: the canonical LIF neuron, deployable CNNs, paper backbones, a registry."""
