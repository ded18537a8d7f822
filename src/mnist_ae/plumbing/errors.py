"""The base of every error a stage reports as one clear line instead of a traceback."""


class PipelineError(Exception):
    """Bad input or an unusable environment; the message names the key, file or source."""
