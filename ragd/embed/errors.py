"""The one exception type the embedding package raises for model problems."""


class ModelError(Exception):
    """A model directory or source is missing, incomplete, unsupported or corrupt.

    The message always names the offending file or setting, because the reader
    is an operator looking at a log line, not a stack trace.
    """
