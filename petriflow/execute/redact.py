"""Credentials out of messages: what an endpoint echoes back is redacted before it is stored or printed.

An endpoint that answers an error with the request's headers or the key it
was given would otherwise put the API key into the checkpoint store, the
``--json`` output and the terminal. :func:`redact` replaces, in any text,
the values of the environment variables that hold keys (those the
workflow's models name with ``api_key_env``, ``OPENAI_API_KEY``, and any
``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``), ``Authorization`` header values,
bearer tokens and ``sk-...`` keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable

__all__ = ["REDACTED", "redact", "redactor", "remember_secret"]

REDACTED = "[REDACTED]"
_PATTERNS = (
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?:bearer\s+|basic\s+)?[^\s\"',}]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"()\bsk-[A-Za-z0-9_-]{6,}"),
    re.compile(r"(?i)((?:api[_-]?key|access[_-]?token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{6,}"),
)
_SECRET_NAMES = re.compile(r"(?i)(^|_)(API_KEY|TOKEN|SECRET|PASSWORD)$")
_REMEMBERED: set[str] = set()


def remember_secret(value: str) -> None:
    """Redact ``value`` too from now on: an endpoint's key read from the variable its model names."""
    if len(value) >= 6:
        _REMEMBERED.add(value)


def _secrets(names: Iterable[str]) -> list[str]:
    keys = {"OPENAI_API_KEY", *names, *(n for n in os.environ if _SECRET_NAMES.search(n))}
    values = {os.environ.get(n, "") for n in keys} | _REMEMBERED
    return sorted((v for v in values if len(v) >= 6), key=len, reverse=True)  # longest first: no partial leaks


def redactor(*, env_names: Iterable[str] = ()) -> Callable[[str], str]:
    """:func:`redact` with the secrets looked up once: for a page that redacts hundreds of values."""
    secrets = _secrets(env_names)

    def apply(text: str) -> str:
        for value in secrets:
            text = text.replace(value, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        return text

    return apply


def redact(text: str, *, env_names: Iterable[str] = ()) -> str:
    """``text`` with every credential it carries replaced by ``[REDACTED]``."""
    return redactor(env_names=env_names)(text)
