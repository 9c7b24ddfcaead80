"""Errors the CLI reports as one line (``error: ...``) with a non-zero exit code."""


class BenchError(Exception):
    """A user-facing error: the message names the file or thing at fault and the problem."""


class DataError(BenchError):
    """Malformed or missing input data (protocol files, images, score files)."""


class MissingWeightsError(BenchError):
    """A model's weight file is absent; the message names the expected file and its source."""


class RegistryError(BenchError):
    """Unknown or inconsistent registry entry (method, dataset or FR model)."""
