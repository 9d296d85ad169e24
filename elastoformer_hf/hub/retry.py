"""Retrying Hub calls on transient failures (5xx, 408/429, dropped connections), never on client errors.

huggingface_hub retries some requests itself (downloads, and the commit of ``upload_folder`` when hf_xet is
installed), but not ``create_repo``, ``create_commit``, tree listings or collections. Every call the push makes
goes through :meth:`RetryPolicy.call`. Retrying a whole ``upload_folder`` is safe: a commit whose response was
lost is not repeated, because the upload first asks the Hub which files already have the same content.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: status codes worth another try: server errors, request timeout, rate limiting
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def _transport_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    try:  # the HTTP client huggingface_hub 2.x uses
        import httpx2

        errors.append(httpx2.TransportError)
    except ImportError:
        pass
    try:
        import httpx

        errors.append(httpx.TransportError)
    except ImportError:
        pass
    return tuple(errors)


TRANSPORT_ERRORS = _transport_errors()


def status_of(err: BaseException) -> int | None:
    """The HTTP status of a failure.

    Args:
        err (`BaseException`): the failure.

    Returns:
        `int` or `None`: the status code of its ``response``, or None when it carries none.
    """
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def is_transient(err: BaseException) -> bool:
    """A failure another attempt may not meet: 5xx/408/429 answers and connection-level errors.

    Args:
        err (`BaseException`): the failure.

    Returns:
        `bool`: True for those; False for offline mode and client errors. A Hub HTTP error without a status
        counts as transient.
    """
    if isinstance(err, OfflineModeIsEnabled):
        return False
    if isinstance(err, HfHubHTTPError):
        status = status_of(err)
        return status is None or status in RETRY_STATUS or status >= 500
    return isinstance(err, TRANSPORT_ERRORS)


def describe(err: BaseException) -> str:
    """One line about a failure (no headers, so no credentials).

    Args:
        err (`BaseException`): the failure.

    Returns:
        `str`: the first line of its message (or its type's name), prefixed with ``HTTP {status}:`` when it
        has a status, at most 300 characters.
    """
    status = status_of(err)
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if status is not None and not text.startswith("HTTP "):
        text = f"HTTP {status}: " + (text[len(str(status)):].lstrip() if text.startswith(str(status)) else text)
    return text[:300]


@dataclass
class RetryPolicy:
    """``attempts`` tries in all, waiting ``base_delay * 2**i`` seconds (at most ``max_delay``) between them.

    Args:
        attempts (`int`, *optional*, defaults to `5`): tries in all.
        base_delay (`float`, *optional*, defaults to `1.0`): the first wait, in seconds.
        max_delay (`float`, *optional*, defaults to `30.0`): the longest wait, in seconds.
        sleep (`Callable[[float], Any]`, *optional*): how to wait (None: ``time.sleep``).
    """

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    sleep: Callable[[float], Any] | None = field(default=None, repr=False)  # None: time.sleep

    def call(self, what: str, fn: Callable[..., T], *args, **kwargs) -> T:
        """``fn(*args, **kwargs)``, tried again after a transient failure (:func:`is_transient`).

        Every retry is logged as a warning.

        Args:
            what (`str`): what the call does, for the log (e.g. ``"creating org/name"``).
            fn (`Callable`): the call.
            *args: positional arguments of ``fn``.
            **kwargs: keyword arguments of ``fn``.

        Returns:
            what ``fn`` returns.

        Raises:
            Exception: ``fn``'s failure, as it is, when it is not transient or the last attempt failed.
        """
        for attempt in range(1, max(1, self.attempts) + 1):
            try:
                return fn(*args, **kwargs)
            except Exception as err:
                if attempt >= self.attempts or not is_transient(err):
                    raise
                delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                logger.warning("%s failed (%s); attempt %d of %d in %.1f s", what, describe(err), attempt + 1,
                               self.attempts, delay)
                (self.sleep or time.sleep)(delay)
        raise AssertionError("unreachable")
