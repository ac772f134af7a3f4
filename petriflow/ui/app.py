"""The console's routes: review queue, runs, a run, its live net, predicted against measured, /metrics.

A Starlette application over one checkpoint store. Pages are rendered on
the server with Jinja2, autoescaping every value (a step output may hold
``<script>``); the only client code is ``static/ui.js``, which polls a
run's state and swaps the net's picture when the marking changes. Reading
the store is quick (indexed SQLite), so it happens on the event loop;
drawing and simulating go to a worker thread, one at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from petriflow.errors import PetriflowError
from petriflow.execute.answers import record_answer, record_escalation
from petriflow.execute.redact import redact
from petriflow.execute.store import RunRow, SqliteStore
from petriflow.ui import compare as cmp
from petriflow.ui.auth import Guard
from petriflow.ui.live import STATES, LiveState, live_state
from petriflow.ui.metrics import MetricsFeed
from petriflow.ui.views import Workflows, ago, review_queue, run_detail, run_summaries

__all__ = ["FRESH", "Console", "make_app"]

FRESH = 60.0
"""Seconds a predicted-vs-measured comparison is shown before it is simulated again."""


class Console:
    """What the routes share: the store, the guard, caches of workflows, nets and pictures."""

    def __init__(self, store: SqliteStore, guard: Guard) -> None:
        self.store = store
        self.guard = guard
        self.workflows = Workflows(store)
        self.metrics = MetricsFeed(store)
        self.fitted: dict[str, str] = {}  # workflow path -> the profile refitted from its runs
        self._nets: dict[str, tuple[float, Any, Any]] = {}
        self._svgs: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._comparisons: dict[tuple[str, str | None], tuple[float, Any]] = {}
        self._refreshing: set[tuple[str, str | None]] = set()
        self._background: set[asyncio.Future[Any]] = set()
        self.env = Environment(loader=PackageLoader("petriflow.ui", "templates"), autoescape=True)
        self.env.globals.update(ago=ago, STATES=STATES, csrf=guard.csrf, fmt_time=_fmt_time)

    def page(self, name: str, code: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(**values), status_code=code)

    def net_of(self, path: str) -> tuple[Any, Any]:
        """The workflow's net and its deadlock overlay (None for a sound one), once per file version."""
        wf, _ = self.workflows.get(path)
        if wf is None:
            return None, None
        from petriflow.net.lower import lower
        from petriflow.viz.witness import deadlock_overlay

        found = self.workflows.file(path)
        mtime = found.stat().st_mtime if found is not None else 0.0
        hit = self._nets.get(path)
        if hit is None or hit[0] != mtime:
            net = lower(wf)
            hit = self._nets[path] = (mtime, net, deadlock_overlay(net))
        return hit[1], hit[2]

    def svg(self, path: str, state: Any) -> bytes:
        """The net drawn with the run's marking (or the workflow's deadlock witness), cached by what it shows."""
        key = (path, state.key)
        if key in self._svgs:
            self._svgs.move_to_end(key)
            return self._svgs[key]
        import tempfile

        from petriflow.viz import draw

        net, overlay = self.net_of(path)
        with cmp.PLOT_LOCK, tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "net.svg"
            if overlay is not None:
                draw(net, out, highlight=overlay.highlight or None, marking=overlay.marking, title=overlay.title,
                     trail=overlay.trail)
            else:
                draw(net, out, marking=state.marking or None, highlight=state.highlight or None, title=state.title())
            data = out.read_bytes()
        self._svgs[key] = data
        while len(self._svgs) > 64:
            self._svgs.popitem(last=False)
        return data


    async def comparison(self, path: str, wf: Any) -> tuple[float, Any]:
        """Predicted vs measured for the workflow's shown runs and when it was made.

        Made on the first visit (and after a refit); older than :data:`FRESH`
        seconds, it is shown as it is while a new one is simulated in the
        background (a simulation takes about half a second), so no visit waits for it.
        """
        key = (path, self.fitted.get(path))
        hit = self._comparisons.get(key)

        async def make() -> tuple[float, Any]:
            made = time.time()
            where = str(self.workflows.file(path) or path)  # a profile beside the workflow is found there
            result = await run_in_threadpool(cmp.compare, self.store, wf, where, _workflow_runs(self, path),
                                             fitted=key[1])
            self._comparisons[key] = (made, result)
            self._refreshing.discard(key)
            return made, result

        if hit is None:
            return await make()
        if time.time() - hit[0] > FRESH and key not in self._refreshing:
            self._refreshing.add(key)
            self._background.add(task := asyncio.ensure_future(make()))
            task.add_done_callback(self._background.discard)
        return hit


def _fmt_time(t: float | None) -> str:
    return "" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


async def review(request: Request) -> Response:
    c = _console(request)
    message, error = request.query_params.get("done"), request.query_params.get("error")
    return c.page("review.html", items=review_queue(c.store, c.workflows), message=message, error=error,
                  now=time.time(), nav="review")


async def answer(request: Request) -> Response:
    """Answer or reject a waiting step: the checks and the write of ``petriflow answer``, once."""
    c = _console(request)

    def record(form: Any, run_id: str, step: str, case: int, npass: int) -> str:
        value = form.get("value")
        if not isinstance(value, str) or not value.strip():
            raise PetriflowError("the answer is empty", hint="type an answer or press one of the choices")
        choices = _choices(c, run_id, step)
        if choices and value.strip() not in choices:
            raise PetriflowError(f"step '{step}' routes on its answer: answer one of {', '.join(choices)}",
                                 hint="press one of the buttons")
        return record_answer(c.store, run_id, step, value.strip(), npass=npass, case=case, once=True)

    return await _review_post(c, request, record)


async def escalate(request: Request) -> Response:
    """Escalate a waiting step now: what its deadline would do (``petriflow answer --escalate``)."""
    c = _console(request)

    def record(form: Any, run_id: str, step: str, case: int, npass: int) -> str:
        return record_escalation(c.store, run_id, step, npass=npass, case=case)

    return await _review_post(c, request, record)


async def _review_post(c: Console, request: Request, record: Callable[[Any, str, str, int, int], str]) -> Response:
    """A review form's post: its CSRF token checked, its fields read, ``record`` called; back to the queue."""
    from urllib.parse import urlencode

    form = await request.form()
    if not c.guard.check_csrf(form.get("csrf")):
        return c.page("error.html", 403, title="Forbidden", text="The form lacked this console's CSRF token; "
                                                                   "reload the review page and answer again.")
    try:
        run_id, step = str(form.get("run_id", "")), str(form.get("step", ""))
        case, npass = int(str(form.get("case", ""))), int(str(form.get("npass", "1")))
        done = record(form, run_id, step, case, npass)
    except ValueError:
        return RedirectResponse("/review?error=the+form+was+incomplete", status_code=303)
    except PetriflowError as err:
        return RedirectResponse("/review?" + urlencode({"error": redact(str(err))}), status_code=303)
    return RedirectResponse("/review?" + urlencode({"done": done}), status_code=303)


def _choices(c: Console, run_id: str, step: str) -> tuple[str, ...]:
    """The labels a human step's route reads from its answer (empty: any text will do)."""
    row = c.store.get_run(run_id)
    wf = None if row is None else c.workflows.get(row.workflow)[0]
    if wf is None or step not in wf.step_ids:
        return ()
    return tuple(dict.fromkeys(b.when for b in wf.step(step).route))


async def runs(request: Request) -> Response:
    c = _console(request)
    q = request.query_params
    status, text = q.get("status") or None, q.get("q") or None
    try:
        page = max(0, int(q.get("page", "0")))
    except ValueError:
        page = 0
    rows, total = run_summaries(c.store, status=status, text=text, page=page)
    return c.page("runs.html", rows=rows, total=total, page=page, status=status or "", q=text or "",
                  statuses=("running", "ok", "failed"), nav="runs", per_page=50)


def _row(c: Console, run_id: str) -> RunRow | Response:
    """The run, or the 404 page that says it is not in this store."""
    row = c.store.get_run(run_id)
    if row is None:
        return c.page("error.html", 404, title="No such run", text=f"There is no run '{run_id}' in {c.store.path}.")
    return row


async def run_page(request: Request) -> Response:
    c = _console(request)
    row = _row(c, request.path_params["run_id"])
    if isinstance(row, Response):
        return row
    return c.page("run.html", d=run_detail(c.store, row, c.workflows), row=row, nav="runs")


LiveRoute = Callable[[Console, RunRow, LiveState | None, str | None], Awaitable[Response]]


def _live(handler: LiveRoute) -> Callable[[Request], Awaitable[Response]]:
    """A route over one run's live state, looked up once: the 404 page without the run; the state is
    None (with why) when its workflow cannot be read."""
    async def route(request: Request) -> Response:
        c = _console(request)
        row = _row(c, request.path_params["run_id"])
        if isinstance(row, Response):
            return row
        wf, why = c.workflows.get(row.workflow)
        state = None if wf is None else live_state(c.store, row, wf, c.net_of(row.workflow)[0])
        return await handler(c, row, state, why)

    route.__name__ = route.__qualname__ = handler.__name__
    return route


@_live
async def net_page(c: Console, row: RunRow, state: LiveState | None, why: str | None) -> Response:
    return c.page("net.html", row=row, state=state, why=why, nav="runs")


@_live
async def state_json(c: Console, row: RunRow, s: LiveState | None, why: str | None) -> Response:
    if s is None:
        return JSONResponse({"error": why}, status_code=409)
    return JSONResponse({"key": s.key, "status": s.status, "driven": s.driven, "title": s.title(),
                         "finished": s.finished, "cases": s.cases, "counts": s.counts})


@_live
async def net_svg(c: Console, row: RunRow, s: LiveState | None, why: str | None) -> Response:
    if s is None:
        return Response(why or "", status_code=409)
    data = await run_in_threadpool(c.svg, row.workflow, s)
    # a picture in an <img> cannot run script; the policy says so to a browser that opens it directly
    return Response(data, media_type="image/svg+xml",
                    headers={"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'; "
                             "style-src 'unsafe-inline'"})


def _workflow_runs(c: Console, path: str) -> list[Any]:
    rows, _ = c.store.run_page(text=path, limit=200)
    return [r for r in rows if r.workflow == path]


async def compare_page(request: Request) -> Response:
    c = _console(request)
    path = request.query_params.get("workflow")
    choices = sorted({r.workflow for r in c.store.run_page(limit=500)[0]})
    if path is None and choices:
        path = choices[0]
    comparison, why, made = None, None, None
    if path is not None:
        wf, why = c.workflows.get(path)
        if wf is not None:
            made, comparison = await c.comparison(path, wf)
            if comparison is None:
                why = "none of its runs has a finished case yet"
    return c.page("compare.html", path=path, choices=choices, cmp=comparison, why=why, nav="compare", made=made,
                  done=request.query_params.get("done"), t=int(time.time() * 1000))


async def compare_png(request: Request) -> Response:
    c = _console(request)
    path = request.query_params.get("workflow", "")
    wf, why = c.workflows.get(path)
    if wf is None:
        return Response(why or "", status_code=409)
    _, comparison = await c.comparison(path, wf)
    if comparison is None:
        return Response("no finished case", status_code=409)
    return Response(await run_in_threadpool(cmp.plot_png, comparison), media_type="image/png",
                    headers={"Cache-Control": "no-store"})


async def refit(request: Request) -> Response:
    from urllib.parse import urlencode

    c = _console(request)
    form = await request.form()
    if not c.guard.check_csrf(form.get("csrf")):
        return c.page("error.html", 403, title="Forbidden", text="The form lacked this console's CSRF token.")
    path = str(form.get("workflow", ""))
    wf, why = c.workflows.get(path)
    if wf is None:
        return c.page("error.html", 409, title="Cannot refit", text=why or "")
    out = Path(str(c.store.path or ".")).with_name(f"{Path(path).stem}.fitted.profile.yaml")
    try:
        await run_in_threadpool(cmp.refit, c.store, wf, _workflow_runs(c, path), out)
    except PetriflowError as err:
        return c.page("error.html", 409, title="Cannot refit", text=redact(str(err)))
    c.fitted[path] = str(out)
    return RedirectResponse("/compare?" + urlencode({"workflow": path, "done": f"refitted into {out}"}),
                            status_code=303)


async def metrics(request: Request) -> Response:
    c = _console(request)
    return Response(c.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def home(request: Request) -> Response:
    return RedirectResponse("/review", status_code=303)


def make_app(store: SqliteStore, *, token: str, hosts: tuple[str, ...] = ()) -> Starlette:
    """The console over ``store``; ``hosts`` are the ``Host`` values a request may carry (empty: any)."""
    guard = Guard(token, hosts)
    app = Starlette(routes=[
        Route("/", home), Route("/review", review), Route("/review/answer", answer, methods=["POST"]),
        Route("/review/escalate", escalate, methods=["POST"]),
        Route("/runs", runs), Route("/runs/{run_id:path}/net", net_page), Route("/runs/{run_id:path}/state.json",
                                                                                 state_json),
        Route("/runs/{run_id:path}/net.svg", net_svg), Route("/runs/{run_id:path}", run_page),
        Route("/compare", compare_page), Route("/compare.png", compare_png),
        Route("/compare/refit", refit, methods=["POST"]), Route("/metrics", metrics),
        Mount("/static", StaticFiles(packages=[("petriflow.ui", "static")]), name="static"),
    ], middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)])
    app.state.console = Console(store, guard)
    return app
