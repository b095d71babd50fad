"""lr-sweep: find the learning-rate setup of a PyTorch training run."""

__version__ = "0.1.0"
