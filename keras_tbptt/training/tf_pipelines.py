"""The `tf.data` pipelines of a `PlanDataset` under TensorFlow.

Two kinds, both without a Python generator inside `tf.data`: the whole
epoch as tensors, sliced per batch in the graph (what Keras does with numpy
arrays), or one `tf.numpy_function` per batch for series that stay where
they are (memory-mapped, or too large to copy). A shuffled epoch (stateless
plans only) permutes the batch indices in the graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf


def batch_indices(tf, n_batches: int, shuffle: bool) -> tf.data.Dataset:
    """`tf.data` of the batch indices: in order, or permuted anew each
    epoch (seeded by Keras' `set_random_seed`)."""
    indices = tf.data.Dataset.range(n_batches)
    if shuffle:
        indices = indices.shuffle(n_batches, reshuffle_each_iteration=True)
    return indices


def epoch_tf_dataset(
    tf, epoch: tuple, batch_rows: np.ndarray, batch_size: int, partial: bool,
    inputs_only: bool = False, shuffle: bool = False,
) -> tf.data.Dataset:
    """Batches sliced from tensors of the whole epoch (`epoch_arrays`:
    `(x, y, sample_weight, flags)`), in the graph; `batch_rows` are the
    rows of each batch, `partial` whether the last batch is smaller."""
    n = len(batch_rows)
    x, y, weight, flags = epoch
    element = (x,) if flags is None else ((x, flags),)
    element += () if y is None or inputs_only else (y, weight)
    if not partial and not shuffle:
        # [samples, ...] -> [batches, batch_size, ...]: one slice per batch
        batches = tf.nest.map_structure(
            lambda a: a.reshape((n, batch_size) + a.shape[1:]), element)
        data = tf.data.Dataset.from_tensor_slices(batches)
    else:  # batches of unequal size, or in random order: slice by index
        tensors = tf.nest.map_structure(tf.constant, element)
        rows = batch_rows
        bounds = tf.constant(np.stack([np.cumsum(rows) - rows, np.cumsum(rows)], axis=1))

        def batch(index):
            start, stop = bounds[index][0], bounds[index][1]
            return tf.nest.map_structure(lambda t: t[start:stop], tensors)

        data = batch_indices(tf, n, shuffle).map(batch)
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    return data.with_options(options).prefetch(tf.data.AUTOTUNE)


def lazy_tf_dataset(
    tf, read: Callable[[int, bool], tuple[Any, ...]], n_batches: int,
    batch_axis: int | None, inputs_only: bool = False, shuffle: bool = False,
) -> tf.data.Dataset:
    """Each batch read by Python (`read(index, inputs_only)` in a
    `tf.numpy_function`); `batch_axis`: the static batch size, or `None`
    when the last batch is smaller."""

    def spec(array):
        return tf.TensorSpec((batch_axis,) + array.shape[1:], tf.as_dtype(array.dtype))

    specs = tf.nest.map_structure(spec, read(0, inputs_only))
    flat = tf.nest.flatten(specs)

    def read_flat(index):
        return tf.nest.flatten(read(int(index), inputs_only))

    def fetch(index):
        arrays = tf.numpy_function(read_flat, [index], [s.dtype for s in flat])
        for array, s in zip(arrays, flat):
            array.set_shape(s.shape)
        return tf.nest.pack_sequence_as(specs, arrays)

    dataset = batch_indices(tf, n_batches, shuffle).map(fetch)
    return dataset.prefetch(tf.data.AUTOTUNE)
