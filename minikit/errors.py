"""The few exceptions minikit raises on purpose, each with a message that says the fix."""


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
