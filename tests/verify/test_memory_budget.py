"""``check --max-memory`` holds every stage: reading the file, the net's dense matrices, the state store.

Each stage refuses before it allocates past the budget, in one line that
names the stage and says what to do (exit 2), or, where a cheaper form
exists, takes it: a net whose dense matrices pass the budget is lowered with
sparse arcs and reduced, and still gets its verdict.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from petriflow.errors import NetError
from petriflow.limits import PARSE_FACTOR, MiB, check_matrix, dense_fits, failing, memory_budget, memory_limit
from petriflow.net.lower import lower
from petriflow.spec import loads

ROOT = Path(__file__).resolve().parents[2]


def _chain(n: int, **step: object) -> list[dict[str, object]]:
    return [{"id": f"s{i}", "kind": "tool", **step, **({"after": [f"s{i - 1}"]} if i else {})} for i in range(n)]


def _two_chains(n: int, **step: object) -> list[dict[str, object]]:
    """Two chains side by side (even and odd steps): a resource of capacity 1 they both use binds."""
    return [{"id": f"s{i}", "kind": "tool", **step, **({"after": [f"s{i - 2}"]} if i > 1 else {})} for i in range(n)]


def _check(doc: dict[str, object], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(doc))
    return subprocess.run([sys.executable, "-m", "petriflow", "check", str(path), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def _one_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2 and "Traceback" not in res.stderr and res.stdout == "", res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "MemoryError" not in line and "--max-memory" in line
    return line


def test_reading_a_file_whose_parse_passes_the_budget_is_refused_before_parsing(tmp_path: Path) -> None:
    doc = {"name": "long", "steps": _chain(600)}
    size = len(yaml.safe_dump(doc).encode())
    budget_mb = 1
    assert size * PARSE_FACTOR > budget_mb * MiB  # the oracle: this file's parse would pass 1 MB
    line = _one_line(_check(doc, tmp_path, "--max-memory", str(budget_mb)))
    assert "cannot read workflow file" in line and f"{size:,} bytes" in line


def test_a_net_past_the_budget_is_kept_sparse_and_still_gets_its_verdict(tmp_path: Path) -> None:
    """A 600-step chain: its dense matrices take 2 x 1,201 x 1,202 x 8 bytes (23 MB), past a 20 MB budget."""
    doc = {"name": "long", "steps": _chain(600)}
    wf = loads(yaml.safe_dump(doc))
    dense = lower(wf)
    assert not dense.is_sparse
    need = 2 * len(dense.transitions) * len(dense.places) * 8
    assert 20 * MiB < need
    with memory_limit(20 * MiB):
        assert lower(wf).is_sparse
    res = _check(doc, tmp_path, "--json", "--max-memory", "20")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["sound"] is True and report["deadlock"] is False


def test_a_reduced_net_past_the_budget_is_refused_in_one_line(tmp_path: Path) -> None:
    """Two chains side by side hold one resource of capacity 1 and retry: it binds, nothing agglomerates: past 20 MB."""
    doc = {"name": "busy", "resources": {"api": {"capacity": 1}},
           "steps": _two_chains(400, uses={"api": 1}, retry={"max_attempts": 2})}
    line = _one_line(_check(doc, tmp_path, "--max-memory", "20"))
    assert "after its reductions" in line and "dense arc matrices would take" in line
    need = float(line.split("would take ")[1].split(" MiB")[0])
    assert need > 20  # the oracle: what it says it needs is past the budget it names


def test_the_budget_holds_only_inside_its_block_and_refuses_nonsense() -> None:
    fail = failing(NetError, "here")
    assert memory_budget() is None and dense_fits(1000, 1000)
    with memory_limit(MiB):
        assert memory_budget() == MiB
        assert dense_fits(100, 100) and not dense_fits(1000, 1000)
        with pytest.raises(NetError, match="--max-memory"):
            check_matrix(1000, 1000, fail=fail)
        with memory_limit(None):
            assert memory_budget() is None
        assert memory_budget() == MiB
    assert memory_budget() is None
    check_matrix(1000, 1000, fail=fail)
    with pytest.raises(Exception, match="positive"), memory_limit(0):
        pass
