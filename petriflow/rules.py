"""The step rules: what the simulator and the executor both obey, written once and without a clock.

What is verified is what is simulated and what is run, so the rules that
decide how one step execution goes (may a failed attempt be tried again, how
long to wait first, how long the next attempt may take, whether to hand over
to the fallback, when a rate-limited call may start, whether a call fits the
budget) must be one piece of code. Two copies drift: the simulator once let
100-token calls through a 600 tokens/min limit ten times as fast as the
executor did. So both call these functions, each with its own clock: the
executor passes the event loop's (``time.monotonic``, or a test's virtual
one), the simulator its simulated time. Nothing here reads a clock, sleeps
or draws a random number; a jitter draw is passed in.

Error kinds (:data:`ERROR_KINDS`) are what a failed attempt was, in the
terms both sides share: the executor classifies each failure
(:func:`error_kind`) and writes the kind into its trace, ``fit`` turns the
kinds into per-kind failure rates of the profile, and the simulator draws
them. Only a fatal failure stops the retries at once.

    >>> may_retry("retryable", attempt=1, max_attempts=3, retries_left=2)
    True
    >>> may_retry("fatal", attempt=1, max_attempts=3, retries_left=2)
    False
    >>> backoff_delay(3, backoff=0.5, backoff_max=30.0, jitter=False, uniform=0.0)
    2.0
    >>> b = Bucket.for_tokens(600, now=0.0)   # 10 tokens/s, a minute's worth to start with
    >>> [b.reserve(0.0, 100) for _ in range(7)]
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 10.0]
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, get_args

from petriflow.errors import RetryableCallError

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "ERROR_KINDS",
    "Bucket",
    "ErrorKind",
    "TokenLedger",
    "Verdict",
    "after_failure",
    "attempt_timeout",
    "backoff_delay",
    "billed",
    "error_kind",
    "estimate_tokens",
    "may_retry",
    "output_limit",
    "prompt_limit",
    "within_budget",
]

ErrorKind = Literal["retryable", "fatal", "timeout"]
ERROR_KINDS: Final[tuple[ErrorKind, ...]] = get_args(ErrorKind)
"""What a failed attempt was: ``retryable`` (429, 5xx, a dropped connection, a malformed answer),
``fatal`` (a refusal another attempt will not change, a bug in a Python step) or ``timeout``
(the attempt ran out of time). The trace's ``error`` field holds one of them."""


def error_kind(exc: BaseException) -> ErrorKind:
    """The kind of what one attempt raised.

    A timeout is its own kind whether the attempt's deadline fired
    (``TimeoutError``) or the model client saw its own timeout first
    (``RetryableCallError(kind="timeout")``): which of the two fires first is
    a race, and the profile should not depend on it. Anything that is
    neither a timeout nor a :class:`~petriflow.errors.RetryableCallError`
    is fatal: retrying a bug or a refusal only spends money.
    """
    if isinstance(exc, TimeoutError) or (isinstance(exc, RetryableCallError) and exc.kind == "timeout"):
        return "timeout"
    if isinstance(exc, RetryableCallError):
        return "retryable"
    return "fatal"


def may_retry(kind: str, *, attempt: int, max_attempts: int, retries_left: int, elapsed: float = 0.0,
              step_timeout: float | None = None) -> bool:
    """Whether the ``attempt``-th attempt of one call, which failed with ``kind``, may be tried again.

    Every bound must allow it: the failure is not fatal, the call has
    attempts left (``attempt < max_attempts``, counted per map item and per
    loop pass), the net's pooled retry budget place still holds a token
    (``retries_left``: the net bounds retries over all passes and items,
    and a step without retry places has 0), and the step's ``step_timeout``
    (over all its attempts) has not run out after ``elapsed`` seconds.
    """
    return (kind != "fatal" and attempt < max_attempts and retries_left > 0
            and (step_timeout is None or elapsed < step_timeout))


class Verdict(enum.Enum):
    """What follows a failed attempt."""

    RETRY = "retry"  # back off, then the next attempt
    FALLBACK = "fallback"  # give up and hand over to the fallback step, which continues in its place
    FAIL = "fail"  # give up; with no fallback the case fails


def after_failure(kind: str, *, attempt: int, max_attempts: int, retries_left: int, has_fallback: bool,
                  elapsed: float = 0.0, step_timeout: float | None = None) -> Verdict:
    """Retry while :func:`may_retry` allows it, else hand over to the fallback if the step has one, else fail.

    A fatal failure hands over at once (the fallback may be another model
    that does not refuse); ``has_fallback`` means the net has the give-up
    transition to it.
    """
    if may_retry(kind, attempt=attempt, max_attempts=max_attempts, retries_left=retries_left, elapsed=elapsed,
                 step_timeout=step_timeout):
        return Verdict.RETRY
    return Verdict.FALLBACK if has_fallback else Verdict.FAIL


def backoff_delay(attempt: int, *, backoff: float, backoff_max: float, jitter: bool, uniform: float,
                  retry_after: float | None = None) -> float:
    """Seconds to wait after the ``attempt``-th failed attempt of a call before the next one.

    Exponential, ``backoff * 2**(attempt - 1)``, capped at ``backoff_max``;
    with ``jitter`` between half and all of it (``uniform`` is a draw from
    [0, 1) the caller makes with its own generator, so the simulator keeps
    its seeded streams); never less than the server's ``Retry-After``,
    which is a promise that an earlier attempt would fail again.
    """
    delay = min(backoff_max, backoff * 2.0 ** max(attempt - 1, 0))
    if jitter:
        delay *= 0.5 + 0.5 * uniform
    return max(delay, retry_after) if retry_after else delay


def attempt_timeout(timeout: float | None, *, step_timeout: float | None, elapsed: float) -> float | None:
    """How long the next attempt may take: the step's ``timeout``, capped by what is left of its ``step_timeout``.

    ``None`` is no limit. A result ``<= 0`` means the step's time ran out
    before the attempt could start: it counts as a timeout without a call.
    """
    if step_timeout is None:
        return timeout
    left = step_timeout - elapsed
    return left if timeout is None else min(timeout, left)


def billed(usage_cost: Any, declared: float | None) -> Any:
    """What one successful attempt of a step is billed: its calls' usage priced, plus the step's ``cost:``.

    The ``cost:`` annotation is a price per successful attempt of any step
    (a tool that calls a paid API, a python step that rents a GPU), on top of
    the tokens of a model call. The executor adds it to what the attempt's
    calls reported, the simulator to each drawn call's price (numpy arrays
    work), and the worst-case cost bound counts it; a failed attempt is
    billed nothing, as it reports no usage.
    """
    return usage_cost + float(declared or 0.0)


_CHARS_PER_TOKEN = 3.0  # conservative (real tokenisers average ~4 for English): estimates err high


FILE_PART_TOKENS: Final = 1500
"""What an image or file content part is assumed to cost in input tokens (a large image at high detail
is about 1,100 on OpenAI's models): the budget check errs high, never by the megabytes of base64."""


def estimate_tokens(messages: Iterable[Mapping[str, Any]] | str) -> int:
    """A pessimistic token count for a prompt, from its length (no tokenizer needed).

    The budget check before a call, the ``max_input_tokens`` check and the
    worst-case cost bound all count a prompt this one way.
    """
    if isinstance(messages, str):
        chars = len(messages)
        extra = 0
    else:
        msgs = list(messages)
        chars = extra = 0
        for m in msgs:
            content = m.get("content", "")
            parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
            for p in parts:
                if isinstance(p, Mapping) and p.get("type") == "text":
                    chars += len(str(p.get("text", "")))
                else:  # an image or a file: what providers charge for a large one, not its base64 length
                    extra += FILE_PART_TOKENS
        extra += 4 * len(msgs)  # role markers of a chat template
    return int(chars / _CHARS_PER_TOKEN) + 1 + extra


DEFAULT_MAX_TOKENS: Final = 256
"""The ``max_tokens`` a chat call sends when its step's ``config`` names none: a server never answers more."""


def output_limit(config: Mapping[str, Any]) -> int:
    """The most output tokens one chat call of a step with this ``config`` can be billed: its ``max_tokens``."""
    return int(config.get("max_tokens", DEFAULT_MAX_TOKENS))


def prompt_limit(config: Mapping[str, Any]) -> int | None:
    """The most prompt tokens a model call of this step may send (``config.max_input_tokens``), None: no bound.

    The executor refuses (a fatal failure, before any request) a call whose
    prompt it estimates above it, so a worst-case cost may count the limit.
    """
    raw = config.get("max_input_tokens")
    return None if raw is None else int(raw)


def within_budget(*, spent: float, worst: float, budget: float | None) -> bool:
    """Whether a call whose worst case costs ``worst`` may be made by a case that has ``spent`` of ``budget``.

    The worst case, not the expected cost: a budget is a promise, and the
    next call could use all of its ``max_tokens``. A call that costs nothing
    is always allowed (it cannot take the case further past its budget).
    """
    return budget is None or not worst or spent + worst <= budget


class Bucket:
    """A rate limit as a token bucket that takes reservations: ``rate`` units per second, ``burst`` at most.

    :meth:`reserve` takes ``amount`` units at ``now`` and says how long the
    caller must wait before it may go. The level may fall below zero: a
    reservation made while the bucket is short queues behind the ones before
    it, so callers go in the order they reserved, spaced at the bucket's
    rate, and nobody polls. The same rule limits requests (1 unit per call)
    and tokens (a call's input + output tokens), in the simulator and in the
    executor alike:

    * the simulator draws a call's tokens when it is admitted, so it
      reserves exactly what the call will use;
    * the executor cannot know them before the call: it reserves an
      estimate (what the step's last call used) and, once the usage is
      known, reserves the difference (negative: units go back), so the
      bucket is charged exactly what was used. A failed attempt keeps its
      reservation, as the simulator charges a failed attempt its tokens.

    Over any horizon ``T`` a bucket admits at most ``rate * T + burst``
    units (it starts full), and a caller that keeps it saturated gets at
    least ``rate * T - amount``. The burst is a resource's capacity for
    requests (no more calls can be in flight at once anyway, so they are
    spaced evenly from the start) and one minute's worth for tokens (a
    per-minute limit lets a minute's tokens go at once; a bucket of less
    would hold back a single call bigger than it for no reason).
    """

    __slots__ = ("at", "burst", "level", "rate")

    def __init__(self, *, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError(f"a bucket needs rate > 0 and burst > 0, got rate={rate}, burst={burst}")
        self.rate, self.burst, self.level, self.at = float(rate), float(burst), float(burst), float(now)

    @classmethod
    def for_requests(cls, requests_per_minute: float, *, capacity: int, now: float) -> Bucket:
        """The request limit of a resource: ``requests_per_minute / 60`` per second, a burst of its capacity."""
        return cls(rate=requests_per_minute / 60.0, burst=float(capacity), now=now)

    @classmethod
    def for_tokens(cls, tokens_per_minute: float, *, now: float) -> Bucket:
        """The token limit of a resource: ``tokens_per_minute / 60`` per second, a burst of one minute's tokens."""
        return cls(rate=tokens_per_minute / 60.0, burst=float(tokens_per_minute), now=now)

    def reserve(self, now: float, amount: float) -> float:
        """Take ``amount`` units at ``now`` (a negative amount gives units back); seconds until they are there.

        ``now`` must not go back in time (each side passes its own monotonic clock).
        """
        level = self.level + (now - self.at) * self.rate
        if level > self.burst:
            level = self.burst
        level -= amount
        self.level, self.at = level, now
        return -level / self.rate if level < 0.0 else 0.0


class TokenLedger:
    """How a call is charged to token buckets before its usage is known: the executor's rule, the simulator's too.

    A call cannot know its tokens before it is made, so it reserves an
    estimate, what its step's last successful call used (0 before the
    first), and once its usage is known the buckets are charged the
    difference (:meth:`settle`, at the time the call returns; a negative
    difference gives units back). A failed attempt keeps what it reserved
    and teaches the ledger nothing. The simulator draws a call's tokens when
    it admits it, but reserves and settles by this same rule, so the queue a
    token limit builds is the executor's queue (one ledger per executor or
    simulation, shared by all cases).

        >>> ledger, b = TokenLedger(), Bucket.for_tokens(600, now=0.0)
        >>> ledger.estimate("ask"), b.reserve(0.0, ledger.estimate("ask"))
        (0, 0.0)
        >>> ledger.settle("ask", [b], now=1.0, reserved=0, used=100); ledger.estimate("ask")
        100
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def estimate(self, step: str) -> int:
        """What the next call of ``step`` reserves: the tokens its last successful call used."""
        return self.last.get(step, 0)

    def settle(self, step: str, buckets: Iterable[Bucket], *, now: float, reserved: int, used: int) -> None:
        """A call of ``step`` that reserved ``reserved`` used ``used``: remember it, charge the difference."""
        self.last[step] = used
        if used != reserved:
            for b in buckets:
                b.reserve(now, used - reserved)
