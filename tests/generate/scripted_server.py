"""A scripted model server: a real HTTP server on 127.0.0.1 speaking the OpenAI protocol, with prepared answers.

Chat requests whose ``X-Petriflow-Step`` header is ``generate`` get the next
prepared answer of the script (the last one again once it runs out); other
chat requests (the steps of a generated workflow that runs) get a fixed kind
reply; embedding requests get a bag of words (each word of the text hashed to one of 64 dimensions), so a
classifier's nearest centroid is the label whose examples share the most words with the message.
Every request body is kept, so a test can read exactly what the model was
told (the repair message, that no secret was in it).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ScriptedServer"]

REPLY = "I am sorry for the wait. Here is what we found."


class ScriptedServer:
    """``with ScriptedServer([doc1, doc2]) as s: ...``; ``s.base_url`` ends in ``/v1``."""

    def __init__(self, script: list[Any]) -> None:
        self.script = [s if isinstance(s, str) else json.dumps(s) for s in script]
        self.requests: list[dict[str, Any]] = []
        self.generate_calls = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                step = self.headers.get("X-Petriflow-Step")
                with outer._lock:
                    outer.requests.append({"path": self.path, "step": step, "body": body,
                                           "headers": dict(self.headers)})
                    answer = outer._answer(step) if self.path.endswith("/chat/completions") else None
                doc = self._embeddings(body) if answer is None else self._chat(body, answer)
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            @staticmethod
            def _chat(body: dict[str, Any], text: str) -> dict[str, Any]:
                prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
                return {"id": "scripted", "object": "chat.completion", "created": 0, "model": body.get("model"),
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}],
                        "usage": {"prompt_tokens": prompt, "completion_tokens": len(text.split()),
                                  "total_tokens": prompt + len(text.split())}}

            @staticmethod
            def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
                texts = body.get("input") or []
                texts = [texts] if isinstance(texts, str) else texts
                rows = []
                for i, t in enumerate(texts):
                    vec = [0.0] * 64
                    for word in re.findall(r"[a-z0-9]+", str(t).lower()):
                        vec[hashlib.sha256(word.encode()).digest()[0] % 64] += 1.0
                    rows.append({"object": "embedding", "index": i, "embedding": vec})
                n = sum(len(str(t).split()) for t in texts)
                return {"object": "list", "data": rows, "model": body.get("model"),
                        "usage": {"prompt_tokens": n, "total_tokens": n}}

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _answer(self, step: str | None) -> str:
        if step != "generate":
            return REPLY
        i = min(self.generate_calls, len(self.script) - 1)
        self.generate_calls += 1
        return self.script[i]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def generation_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["step"] == "generate"]

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
