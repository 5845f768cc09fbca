"""Placeholder: kernels of this module are being written (see setup.py KERNELS)."""
