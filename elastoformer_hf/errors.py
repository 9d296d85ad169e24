"""User-facing errors.

Everything the user can get wrong (a ratio outside (0, 1), an unknown model, a corrupt checkpoint, ...) raises an
:class:`ElastoformerError`; the command line prints its message as one line and exits with status 2 instead of
showing a traceback.
"""


class ElastoformerError(Exception):
    """A problem with the user's input or files, explained in one line."""


class UnsupportedModelError(ElastoformerError):
    """The model (or architecture) is not one elastoformer-hf can transform."""


class CheckpointError(ElastoformerError):
    """A checkpoint folder is missing, incomplete, corrupt or does not match its config."""
