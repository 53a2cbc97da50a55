"""`StreamStates`: the states of many named streams, kept in numpy."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pure Python and numpy: Keras only runs `streamer`
    import keras
    from numpy.typing import ArrayLike


class StreamStates:
    """Serve many named streams with one streaming model, in pure Python.

    Keeps the recurrent states of every open stream in numpy arrays (one
    row per stream) and runs `streamer` (a model from
    `keras_tbptt.streaming`) on the rows of the streams of each call,
    feeding their states back. A new stream starts from zero states.

    Args:
        streamer: a model from `keras_tbptt.streaming` (with or without
            `reset_flags`; the flags are fed zeros: `reset` a stream to
            restart it).
        run: optional callable `run(inputs) -> outputs` used instead of
            `streamer.predict_on_batch`, e.g. an exported model's serving
            function: it gets the list of inputs `[x, *states]` (then the
            flags) as numpy arrays and returns `[y, *new_states]`.

    Example:

    >>> import numpy as np, keras, keras_tbptt
    >>> model = keras.Sequential([
    ...     keras.Input(batch_shape=(32, 20, 2)),
    ...     keras_tbptt.TBPTTLSTM(4, stateful=True, return_sequences=True),
    ...     keras.layers.Dense(1),
    ... ])
    >>> streams = keras_tbptt.StreamStates(keras_tbptt.streaming(model))
    >>> streams.open("a"); streams.open("b")
    >>> streams.step("a", np.ones((5, 2), "float32")).shape  # 5 steps of one stream
    (5, 1)
    >>> streams.step(["a", "b"], np.ones((2, 1, 2), "float32")).shape  # both, 1 step
    (2, 1, 1)
    >>> streams.close("a"); streams.names
    ['b']
    """

    def __init__(
        self,
        streamer: keras.Model,
        run: Callable[[list[np.ndarray]], Sequence[ArrayLike]] | None = None,
    ) -> None:
        inputs = list(streamer.inputs)
        names = [tensor.name for tensor in inputs]
        self._flags = bool(names) and names[-1] == "reset_flags"
        states = inputs[1:-1] if self._flags else inputs[1:]
        if not names or names[0] != "x" or not states:
            raise ValueError(
                "`streamer` must be a model made by keras_tbptt.streaming(). "
                f"Received: a model with inputs {names}"
            )
        self.streamer = streamer
        self._run = run or streamer.predict_on_batch
        self._sizes = [int(tensor.shape[-1]) for tensor in states]
        self._dtypes = [str(tensor.dtype) for tensor in states]
        self._rows = {}  # name -> row of the state arrays
        self._free = []
        self._states = [np.zeros((0, size), dtype) for size, dtype in zip(self._sizes, self._dtypes)]

    @property
    def names(self) -> list[Hashable]:
        """The names of the open streams, in opening order."""
        return list(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, name: Hashable) -> bool:
        return name in self._rows

    def open(self, name: Hashable) -> None:
        """Open stream `name`, with zero states."""
        if name in self._rows:
            raise ValueError(f"Stream {name!r} is already open.")
        if not self._free:
            old = len(self._states[0])
            new = max(8, 2 * old)
            self._states = [np.concatenate([s, np.zeros((new - old, s.shape[1]), s.dtype)]) for s in self._states]
            self._free = list(range(new - 1, old - 1, -1))
        row = self._free.pop()
        for state in self._states:
            state[row] = 0
        self._rows[name] = row

    def close(self, name: Hashable) -> None:
        """Close stream `name` and forget its states."""
        self._free.append(self._rows.pop(self._check([name])[0]))

    def reset(self, name: Hashable) -> None:
        """Restart stream `name` from zero states."""
        row = self._rows[self._check([name])[0]]
        for state in self._states:
            state[row] = 0

    def states(self, name: Hashable) -> list[np.ndarray]:
        """Copies of the states of stream `name`, in the streamer's input order."""
        row = self._rows[self._check([name])[0]]
        return [state[row].copy() for state in self._states]

    def step(self, names: Hashable | Sequence[Hashable], x: ArrayLike) -> np.ndarray:
        """Run the streams `names` on their next steps `x`.

        Args:
            names: one stream name, or a list of names (each at most once).
            x: for one name, `(steps, features)`; for a list,
                `(len(names), steps, features)`.

        Returns:
            The streamer's output `y` for those steps: without the stream
            axis for one name, else with one row per name.
        """
        single = not isinstance(names, (list, tuple))
        names = [names] if single else list(names)
        self._check(names)
        if len(set(names)) != len(names):
            raise ValueError(f"Each stream may appear once per step. Received: {names}")
        x = np.asarray(x)
        if single:
            x = x[None]
        if x.ndim != 3 or len(x) != len(names):
            raise ValueError(
                f"`x` must be (steps, features) for one stream, or "
                f"(len(names), steps, features) for a list of {len(names)} "
                f"names. Received: x of shape {np.shape(x)[1:] if single else np.shape(x)}"
            )
        rows = np.array([self._rows[name] for name in names])
        inputs = [x.astype(self._dtypes[0], copy=False)] + [state[rows] for state in self._states]
        if self._flags:
            inputs.append(np.zeros(len(names), "float32"))
        y, *new = self._run(inputs)
        for state, value in zip(self._states, new, strict=True):
            state[rows] = np.asarray(value)
        y = np.asarray(y)
        return y[0] if single else y

    def _check(self, names):
        unknown = [name for name in names if name not in self._rows]
        if unknown:
            raise KeyError(
                f"Unknown streams {unknown}: open them first with "
                f"open(name). Open streams: {self.names}"
            )
        return names
