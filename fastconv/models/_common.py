"""Argument checks shared by the model builders."""
import numpy as np


def check_choice(value, name, choices):
    """``choices[value]`` for a string option, or a ValueError listing the choices."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return choices[value]


def check_count(value, name, allowed=None):
    """A positive int (from ``allowed`` if given), or a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    if allowed is not None and int(value) not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")
    return int(value)
