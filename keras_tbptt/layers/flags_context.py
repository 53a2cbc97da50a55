"""The reset flags of the running `with_reset_flags` model, for its layers."""

import contextlib
import contextvars

# Set by `WithResetFlags.call` for the duration of the inner model's call, so
# every stateful keras_tbptt layer (`TruncatedRNN`) inside (nested models, `Bidirectional` included)
# reads the flags of its own batch, whether traced once per step or unrolled
# for `steps_per_execution > 1`.
_RESET_FLAGS = contextvars.ContextVar("keras_tbptt_reset_flags", default=None)


def current_reset_flags():
    """The reset flags of the running `with_reset_flags` model, or `None`."""
    return _RESET_FLAGS.get()


@contextlib.contextmanager
def reset_flags_in_effect(flags):
    """Make `flags` the current reset flags inside the `with` block."""
    token = _RESET_FLAGS.set(flags)
    try:
        yield
    finally:
        _RESET_FLAGS.reset(token)
