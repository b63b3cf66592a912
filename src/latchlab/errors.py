"""Errors a user can cause, each rendered as one line naming what to fix."""

from __future__ import annotations


class LatchlabError(Exception):
    """Base class: the CLI prints ``error: <message>`` and exits with code 2."""


class ConfigError(LatchlabError, ValueError):
    """A configuration value is wrong. The message names the field and what is allowed."""

    def __init__(self, field: str, problem: str, allowed=None):
        self.field = field
        msg = f"{field}: {problem}"
        if allowed is not None:
            msg += f" (allowed: {', '.join(map(str, allowed))})"
        super().__init__(msg)


class StoreError(LatchlabError):
    """A results store cannot be used as asked; it is left untouched."""


class LimitError(ConfigError):
    """A piece of work needs more memory than the machine has (``latchlab.limits``); the
    message gives the estimate and the limit. Raised before anything is allocated or written."""
