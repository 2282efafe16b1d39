"""dftnet-bench: DFT-Net (ICIP 2019) and its GANimation baseline, as a reproducible benchmark."""

__version__ = "0.1.0"
