"""The package-wide random generator (weight init, dropout, shuffling)."""
from __future__ import annotations

import numbers
from typing import Union

import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed fastconv's global generator (like ``torch.manual_seed``); returns it.

    Parameters
    ----------
    seed : int
        A non-negative integer. Layer initialisation, dropout masks and shuffling that are
        not given an explicit ``rng`` draw from this generator.
    """
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    _rng = np.random.default_rng(int(seed))
    return _rng


def get_rng(rng: Union[np.random.Generator, int, None] = None) -> np.random.Generator:
    """Return ``rng`` as a Generator: a Generator, an int seed, or None for the global one."""
    if rng is None:
        return _rng
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}")
