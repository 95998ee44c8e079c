"""sqgan_core: the SQ-GAN codec (model, bitstream, entropy coding, metrics). Knows no ROS node."""

__version__ = "0.1.0"
