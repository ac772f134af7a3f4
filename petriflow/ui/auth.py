"""Who may use the console: the holder of the token printed at start, from this machine's loopback.

As notebook servers do, the server makes a random token and prints one URL
that carries it (``/?token=...``). The first visit trades it for an
``HttpOnly``, ``SameSite=Strict`` cookie and is redirected to the same page
without it, so the token does not stay in the address bar or the history.
Every other request needs the cookie (or ``Authorization: Bearer TOKEN``,
for a Prometheus scraper); without it the answer is 401 with a page that
says what to do. A request whose ``Host`` is not the address the server
listens on is refused (403), so a web page elsewhere cannot reach the
console through DNS rebinding.

Every POST carries a CSRF token in its form, derived from the access token
(HMAC), and is refused (403) without it or with a foreign ``Origin``: a
page in another tab cannot answer a review step in the reviewer's name.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

__all__ = ["COOKIE", "Guard", "new_token"]

COOKIE = "petriflow_ui"


def new_token() -> str:
    """A fresh access token: 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


_REFUSED = """<!doctype html><html><head><meta charset="utf-8"><title>petriflow ui: {title}</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto"><h1>{title}</h1><p>{text}</p></body></html>"""


def refused(status: int, title: str, text: str) -> Response:
    return HTMLResponse(_REFUSED.format(title=title, text=text), status_code=status)


class Guard:
    """The token, the hosts a request may name, and the CSRF token forms carry."""

    def __init__(self, token: str, hosts: Iterable[str]) -> None:
        self.token = token
        self.hosts = frozenset(hosts)
        self.csrf = hmac.new(token.encode(), b"petriflow-ui-csrf", hashlib.sha256).hexdigest()

    def _same(self, given: str | None, want: str) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), want.encode())

    def signed_in(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        return self._same(request.cookies.get(COOKIE), self.token) or self._same(bearer, self.token)

    async def __call__(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """The middleware: host check, token trade, cookie check, origin check on POST."""
        if self.hosts and request.headers.get("host", "") not in self.hosts:
            return refused(403, "Forbidden", "This console answers only at the address it printed.")
        given = request.query_params.get("token")
        if given is not None:
            if not self._same(given, self.token):
                return refused(401, "Wrong token", "Open the URL that <code>petriflow ui</code> printed.")
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            response: Response = RedirectResponse(request.url.path + (f"?{rest}" if rest else ""), status_code=303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
            return response
        if not self.signed_in(request):
            return refused(401, "Sign-in needed", "Open the URL with <code>?token=...</code> that "
                                                  "<code>petriflow ui</code> printed when it started.")
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            if origin is not None and origin.partition("://")[2] not in self.hosts:
                return refused(403, "Forbidden", "A form from another site cannot post here.")
        return await call_next(request)

    def check_csrf(self, form_value: object) -> bool:
        """Whether a POSTed form carried this console's CSRF token."""
        return isinstance(form_value, str) and self._same(form_value, self.csrf)
