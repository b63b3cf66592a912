"""What counts as a success: the one threshold behind every success rate, table and figure."""

from __future__ import annotations

SUCCESS_THRESHOLD = 0.99
"""A member succeeds when its final validation accuracy is at least this (``docs/science.md``)."""


def succeeded(val_acc, threshold: float = SUCCESS_THRESHOLD):
    """``val_acc >= threshold``, elementwise (a bool array or scalar)."""
    return val_acc >= threshold
