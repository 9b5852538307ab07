"""Amaranth RTL of the sparse-Winograd accelerator and its generator (``python -m hw.generate``)."""
