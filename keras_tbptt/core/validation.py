"""Argument validators: `check_int`, `check_string` and `check_choice`, with uniform messages."""

import numpy as np


def check_int(value, name, minimum=1, allow_none=False):
    """Return `value` as an int >= `minimum`, or raise naming `name`."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"`{name}` must be {'None or ' if allow_none else ''}an integer >= {minimum}. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    if value < minimum:
        raise ValueError(
            f"`{name}` must be {'None or ' if allow_none else ''}an integer >= "
            f"{minimum}. Received: {name}={value}"
        )
    return int(value)


def check_string(value, name, allow_none=False):
    """Return `value`, a non-empty string, or raise naming `name`."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise TypeError(
            f"`{name}` must be {'None or ' if allow_none else ''}a string. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    if not value:
        raise ValueError(
            f"`{name}` must be {'None or ' if allow_none else ''}a non-empty "
            f"string. Received: {name}={value!r}"
        )
    return value


def check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {', '.join(map(repr, choices))}. "
            f"Received: {name}={value!r}"
        )
    return value
