"""Index labels as error messages write them."""

import pandas as pd


def format_labels(labels, limit=5):
    labels = list(labels)
    shown = ", ".join(repr(label) for label in labels[:limit])
    if len(labels) > limit:
        return f"[{shown}, ...] ({len(labels)} in all)"
    return f"[{shown}]"


def label_text(label):
    """An index label for a message: dates without a midnight time."""
    if isinstance(label, pd.Timestamp) and label == label.normalize():
        return str(label.date())
    return repr(label) if isinstance(label, str) else str(label)
