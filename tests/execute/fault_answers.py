"""What the fault server says, without any I/O: which fault a request gets, and the deterministic answers.

Split from :mod:`tests.execute.fault_server` (the HTTP side: sockets, routes,
the in-thread and subprocess handles) so the rules a test relies on when it
asserts a count or a reply can be read in one place. The protocol itself is
documented in the server's module docstring.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .synthetic import Synthetic

__all__ = ["MODEL", "Admission", "Rule", "State", "chat_reply", "embedding", "example", "usage", "word_count"]

MODEL = "fault-model"


@dataclass
class Rule:
    """Faults (consumed in order) and an optional fixed reply for requests that match."""

    match: str
    faults: list[str] = field(default_factory=list)
    reply: str | None = None
    delay: float | None = None

    def applies(self, step: str | None, text: str) -> bool:
        return self.match == "*" or self.match == step or (bool(self.match) and self.match in text)


class Admission(NamedTuple):
    """What :meth:`State.admit` decided for one request; ``tokens`` overrides the usage it reports."""

    fault: str
    reply: str | None
    delay: float
    tokens: tuple[int | None, int | None] = (None, None)


class State:
    """Counters, rules and behaviours shared by the loop thread and the controlling thread."""

    def __init__(self, delay: float, dim: int) -> None:
        self.delay = delay
        self.dim = dim
        self.lock = threading.Lock()
        self.in_flight = 0  # admitted and not answered yet; outlives reset(), whose requests may still be open
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.rules: list[Rule] = []
            self.synthetic: Synthetic | None = None
            self.paths: Counter[str] = Counter()
            self.steps: Counter[str] = Counter()
            self.prompts: Counter[str] = Counter()
            self.faults: Counter[str] = Counter()
            self.total = 0
            self.peak_in_flight = self.in_flight
            self.chats: deque[list[Any]] = deque(maxlen=64)  # the messages of the last chat requests, as sent

    def record_chat(self, messages: list[Any]) -> None:
        with self.lock:
            self.chats.append(messages)

    def chat_messages(self) -> list[list[Any]]:
        """The ``messages`` of the last 64 chat requests, oldest first (what a test asserts a request carried)."""
        with self.lock:
            return list(self.chats)

    def counts(self) -> dict[str, Any]:
        with self.lock:
            return {"total": self.total, "paths": dict(self.paths), "steps": dict(self.steps),
                    "prompts": dict(self.prompts), "faults": dict(self.faults), "in_flight": self.in_flight,
                    "peak_in_flight": self.peak_in_flight}

    def add_rules(self, rules: list[dict[str, Any]]) -> None:
        with self.lock:
            for r in rules:
                self.rules.append(Rule(match=str(r.get("match", "*")), faults=list(r.get("faults") or []),
                                       reply=r.get("reply"), delay=r.get("delay")))

    def set_synthetic(self, synthetic: Synthetic | None) -> None:
        """Requests that no header or rule decides draw from these behaviours (see :mod:`.synthetic`)."""
        with self.lock:
            self.synthetic = synthetic

    def draws(self) -> list[dict[str, Any]]:
        """Every draw of the behaviours since they were set, in arrival order."""
        with self.lock:
            return list(self.synthetic.log) if self.synthetic is not None else []

    def admit(self, path: str, headers: dict[str, str], text: str, prompt: str | None,
              model: str | None = None) -> Admission:
        """Count one request and decide its fault, reply, delay and reported usage; it is in flight until
        :meth:`release`."""
        step = headers.get("x-petriflow-step")
        tokens: tuple[int | None, int | None] = (None, None)
        with self.lock:
            self.total += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self.paths[path] += 1
            if step:
                self.steps[step] += 1
            if prompt is not None:
                self.prompts[prompt] += 1
            fault, reply, delay = headers.get("x-fault"), None, self.delay
            for rule in self.rules:
                if not rule.applies(step, text):
                    continue
                if fault is None and rule.faults:
                    fault, reply = rule.faults.pop(0), rule.reply
                    delay = rule.delay if rule.delay is not None else delay
                    break
                if not rule.faults and (rule.reply is not None or rule.delay is not None):
                    reply = rule.reply
                    delay = rule.delay if rule.delay is not None else delay
                    break
            else:  # no rule decided: the behaviours, if any
                drawn = self.synthetic.draw(step, model) if fault is None and self.synthetic is not None else None
                if drawn is not None:
                    fault, reply, delay = drawn.fault, drawn.reply, drawn.delay
                    tokens = (drawn.input_tokens, drawn.output_tokens)
            fault = fault or "ok"
            self.faults[fault] += 1
        if "x-delay" in headers:
            delay = float(headers["x-delay"])
        return Admission(fault, reply, delay, tokens)

    def release(self) -> None:
        """An admitted request is over: answered, failed, dropped or hung up on."""
        with self.lock:
            self.in_flight -= 1


# -- answers --------------------------------------------------------------------


def message_text(content: Any) -> str:
    """A message's text: the string, or the text parts of a list of content parts joined by spaces."""
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content or "")


def word_count(text: str) -> int:
    """The server's token count: whitespace-separated words."""
    return len(text.split())


def example(schema: dict[str, Any]) -> Any:
    """A minimal instance of a JSON schema (first enum value, required properties only)."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return example(schema[key][0])
    t = schema.get("type", "object")
    t = t[0] if isinstance(t, list) else t
    if t == "object":
        props = schema.get("properties", {})
        return {k: example(props.get(k, {})) for k in schema.get("required", list(props))}
    if t == "array":
        return [example(schema.get("items", {}))] * int(schema.get("minItems", 0))
    return {"string": "x", "number": 0.5, "integer": 1, "boolean": True, "null": None}.get(t, "x")


def chat_reply(req: dict[str, Any], fixed: str | None) -> tuple[str, str]:
    messages = req.get("messages") or []
    last_user = next((message_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    if fixed is not None:
        text = fixed
    else:
        fmt = req.get("response_format") or {}
        schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
        text = json.dumps(example(schema)) if schema else f"echo: {last_user}"
    limit = req.get("max_tokens") or req.get("max_completion_tokens")
    words = text.split(" ")
    if limit is not None and word_count(text) > int(limit):
        return " ".join(words[: int(limit)]), "length"
    return text, "stop"


def usage(req: dict[str, Any], reply: str, tokens: tuple[int | None, int | None] = (None, None)) -> dict[str, int]:
    """Words of the messages and of the reply, unless ``tokens`` (drawn by a behaviour) says otherwise;
    the completion never reports more than ``max_tokens``, as a real server would not."""
    prompt = sum(word_count(message_text(m.get("content"))) for m in req.get("messages") or [])
    completion = word_count(reply)
    prompt = prompt if tokens[0] is None else tokens[0]
    completion = completion if tokens[1] is None else tokens[1]
    limit = req.get("max_tokens") or req.get("max_completion_tokens")
    if limit is not None:
        completion = min(completion, int(limit))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def embedding(text: str, dim: int) -> list[float]:
    vec = [0.0] * dim
    for word in text.lower().split():
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        vec[h % dim] += 1.0 if (h >> 32) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]
