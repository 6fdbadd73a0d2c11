"""The few exceptions minikit raises on purpose, each with a message that says the fix, and the checks behind them."""

import math
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import numpy as np


class MinikitError(Exception):
    """Base class: catch this to handle any minikit error."""


class UnknownNameError(MinikitError, ValueError):
    """A model or dataset name minikit does not know."""


class ModelNotAvailableError(MinikitError, OSError):
    """Weights are neither embedded, local, in the hub cache, nor reachable online."""


class DataError(MinikitError, ValueError):
    """Input data that cannot be used as given (missing columns, empty rows, bad labels, ...)."""


class OnnxMismatchError(MinikitError, ValueError):
    """An ONNX model whose outputs disagree with the PyTorch model beyond the stated tolerance."""


def is_int(value) -> bool:
    """True for a whole number (a Python or NumPy integer), False for a bool: what counts, sizes and seeds must be."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_finite(value) -> bool:
    """True for a finite real number (not a bool, NaN or infinity): what rates, weights and fractions must be."""
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


class DataWarning(UserWarning):
    """Something in the data was changed or dropped on request; the message says what."""


# The interface the user is in: an error's fix names what they can type there. Python callers pass
# arguments (text_column=...); the command line has options (--text-column ...). The CLI sets it.
_COMMAND_LINE: ContextVar[bool] = ContextVar("minikit_command_line", default=False)


@contextmanager
def command_line() -> Iterator[None]:
    """Within this block, ``option()`` names command-line options: errors raised there say ``--text-column``."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def option(name: str, value: str = "...", text: bool = False) -> str:
    """How the user sets argument ``name``: ``text_column=...`` from Python, ``--text-column ...`` on the command line.

    ``text=True``: ``value`` is a string, quoted in Python (``encoding='cp1252'``) and bare on the command line.
    """
    if _COMMAND_LINE.get():
        return f"--{name.replace('_', '-')} {value}".rstrip()
    return f"{name}={value!r}" if text else f"{name}={value}"
