"""Argument checks shared by the model builders."""
import numpy as np

from .._validation import choice_error


def check_count(value, name, allowed=None):
    """A positive int (from ``allowed`` if given), or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    if allowed is not None and int(value) not in allowed:
        raise choice_error(name, sorted(allowed), value)
    return int(value)
