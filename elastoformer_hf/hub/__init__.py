"""Publishing an elastic family to the Hugging Face Hub (``elastoformer push``)."""

from .push import PushError, PushResult, RepoOutcome, push_run, same_as_remote
from .retry import RetryPolicy, is_transient

__all__ = ["PushError", "PushResult", "RepoOutcome", "RetryPolicy", "is_transient", "push_run", "same_as_remote"]
