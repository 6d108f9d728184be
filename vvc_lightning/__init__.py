"""vvc-lightning: perceptual neural video compression with video VAEs, on PyTorch Lightning."""

__version__ = "0.1.0"
