"""Numeric user arrays: dtype checks, float conversion, views of stacked series."""

import mmap
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd


class SeriesViews(Sequence):
    """The series of a stacked `[n, length, ...]` array, as views made on demand.

    Behaves like the list `list(stacked)` without holding it: a view is a
    Python object of 100-500 bytes, which for many short series costs more
    than the data, and batches are read from `stacked` anyway.

    Example:

    >>> import numpy as np
    >>> stacked = np.zeros((100_000, 10, 2), dtype=np.float32)
    >>> series = SeriesViews(stacked)
    >>> len(series), series[-1].shape, np.shares_memory(series[3], stacked)
    (100000, (10, 2), True)
    """

    __slots__ = ("stacked",)

    def __init__(self, stacked):
        self.stacked = stacked

    def __len__(self):
        return self.stacked.shape[0]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.stacked[i] for i in range(len(self))[index]]
        return self.stacked[index]

    def __iter__(self):
        return iter(self.stacked)

    def __repr__(self):
        return f"SeriesViews({len(self)} series of shape {self.stacked.shape[1:]})"


def as_numeric(values, name, where=""):
    values = np.asarray(values)
    if values.dtype == object:
        try:
            values = values.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"`{name}` must hold numbers{where}. Received an array of "
                "dtype=object that cannot be converted to float; convert or "
                "encode non-numeric columns first."
            ) from None
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        raise TypeError(
            f"`{name}` must hold numbers{where}. Received dtype={values.dtype}; "
            "convert or encode non-numeric data first."
        )
    if np.issubdtype(values.dtype, np.complexfloating):
        raise TypeError(
            f"`{name}` must hold real numbers. Received dtype={values.dtype}."
        )
    return values


def is_memory_mapped(array):
    """Whether `array` is a view of a memory-mapped file (`np.load(mmap_mode=)`)."""
    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


def as_float(values, name="series"):
    # Integers and booleans become float32 (a copy); floats stay views.
    if np.issubdtype(values.dtype, np.floating):
        return values
    if is_memory_mapped(values):
        warnings.warn(
            f"`{name}` is a memory-mapped array of dtype {values.dtype}: it is "
            f"copied into memory as float32 ({values.size * 4 / 1e6:,.1f} MB) "
            "to make batches. Save it as float32 (e.g. np.save(path, "
            "array.astype(np.float32))) so that batches are read from the "
            "file instead.",
            stacklevel=4,
        )
    return values.astype(np.float32)


def is_sequence_of_series(obj):
    return isinstance(obj, (list, tuple)) and any(
        isinstance(item, (np.ndarray, pd.Series, pd.DataFrame, list, tuple))
        for item in obj
    )


def as_2d(array, name, where=""):
    if array.ndim == 1:
        return array[:, None]
    if array.ndim == 2:
        return array
    raise ValueError(
        f"`{name}` must be 1-D or 2-D{where}. "
        f"Received: shape={array.shape}"
    )
