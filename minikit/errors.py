"""The few exceptions minikit raises on purpose, each with a message that says the fix, and the checks behind them."""

import math

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
