"""SQ-GAN networks: layers, encoders, SAMM, vector quantiser, ADM, decoders and the full generator."""
from sqgan_core.models.sqgan import SQGAN, Tokens

__all__ = ["SQGAN", "Tokens"]
