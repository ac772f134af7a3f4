"""What went wrong with one model call, in a form the executor can act on.

:func:`classify_error` turns whatever one attempt raised (openai's errors, the
underlying httpx transport errors, a timeout, a malformed answer) into a
:class:`~petriflow.errors.RetryableCallError` or a
:class:`~petriflow.errors.FatalCallError` (both in the one exception tree of
:mod:`petriflow.errors`); ``openai`` is imported when an error is classified.
"""

from __future__ import annotations

import email.utils
import functools
import time
from collections.abc import Mapping
from typing import Any

from petriflow.errors import FatalCallError, ModelCallError, RetryableCallError, RetryKind

__all__ = ["FatalCallError", "RetryKind", "RetryableCallError", "classify_error", "httpx_module",
           "parse_retry_after"]

def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``Retry-After`` (seconds or an HTTP date)."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@functools.cache
def httpx_module() -> Any:
    """The HTTP library the installed openai is built on: ``httpx2`` (openai 3) or ``httpx`` (1 and 2)."""
    import importlib

    import openai

    for base in openai.DefaultAsyncHttpxClient.__mro__:
        if base.__name__ == "AsyncClient":
            return importlib.import_module(base.__module__.split(".")[0])
    import httpx  # type: ignore[import-not-found]

    return httpx


def classify_error(exc: BaseException, *, where: str | None = None) -> ModelCallError:
    """Turn whatever one attempt raised into a RetryableCallError or a FatalCallError."""
    import openai

    if isinstance(exc, RetryableCallError) and exc.where is None and where:
        return RetryableCallError(exc.message, kind=exc.kind, retry_after=exc.retry_after, status=exc.status,
                                  where=where, hint=exc.hint)
    if isinstance(exc, ModelCallError):
        return exc
    if isinstance(exc, (TimeoutError, openai.APITimeoutError)):
        return RetryableCallError("the call timed out", kind="timeout", where=where)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        headers = dict(exc.response.headers) if exc.response is not None else {}
        wait = parse_retry_after(headers)
        detail = f"HTTP {status}: {getattr(exc, 'message', exc)}"
        if status == 429:
            return RetryableCallError(detail, kind="rate_limit", retry_after=wait, status=status, where=where)
        if status == 408:
            return RetryableCallError(detail, kind="timeout", retry_after=wait, status=status, where=where)
        if status >= 500 or status in (409, 425):
            return RetryableCallError(detail, kind="server", retry_after=wait, status=status, where=where)
        hint = {401: "check the API key variable", 403: "check the API key's permissions",
                404: "check the model name and base_url"}.get(status)
        return FatalCallError(detail, status=status, where=where, hint=hint)
    if isinstance(exc, openai.APIConnectionError):
        url = getattr(getattr(exc, "request", None), "url", None)
        return RetryableCallError(f"cannot reach the endpoint{f' at {url}' if url else ''}: {exc.__cause__ or exc}",
                                  kind="connection", where=where, hint="check that the server runs and base_url")
    if isinstance(exc, (openai.APIResponseValidationError, ValueError)):
        return RetryableCallError(f"the endpoint's answer is malformed: {exc}", kind="malformed", where=where)
    httpx = httpx_module()
    if isinstance(exc, httpx.TimeoutException):
        return RetryableCallError("the call timed out", kind="timeout", where=where)
    if isinstance(exc, (httpx.TransportError, httpx.StreamError)):
        return RetryableCallError(f"the connection failed: {exc}", kind="connection", where=where)
    if isinstance(exc, openai.OpenAIError):
        return FatalCallError(str(exc), where=where)
    raise exc
