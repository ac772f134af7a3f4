"""Input limits in one place: how big, how deep and how large a number petriflow reads.

Every loader (workflow, profile, trace, inputs, arrival times, PNML, the
SQLite files) and every numeric CLI flag goes through these functions, so a
careless or hostile input is refused with one :class:`~petriflow.errors.InputError`
line (exit 2) before it can hang the process, fill its memory or reach numpy:

* a path that is not a regular file (a FIFO would block forever, a symlink to
  ``/dev/zero`` reads until memory runs out) or is larger than its budget;
* a binary file where text is expected;
* a YAML alias bomb (683 bytes that expand to billions of values) or 20,000
  nested brackets (a ``RecursionError`` in every parser that recurses);
* JSON that is not JSON (a trailing comma, ``NaN``);
* NaN, infinity, or an integer beyond 64 bits anywhere in a document;
* a number outside the range its field allows (a probability of 1.5, a
  negative token count, ``--seed -1``);
* a net whose dense ``transition x place`` matrices would not fit in memory;
* an output path that is one of the inputs (``fit -o`` given the workflow).

The numbers are budgets, not physics: each constant says why it is what it is.
A loader reports a refusal in its own terms through a :data:`Fail` (its error
class, its file and line); :func:`failing` makes the usual one.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from petriflow.errors import UNPRINTABLE, InputError, printable

if TYPE_CHECKING:
    import sqlite3

__all__ = [
    "MAX_ATTACHMENT_BYTES", "MAX_ATTEMPTS", "MAX_CASES", "MAX_COUNT", "MAX_DEPTH", "MAX_DOCUMENT_BYTES",
    "MAX_LOOP", "MAX_MAP_ITEMS", "MAX_MATRIX_CELLS", "MAX_NAME", "MAX_NODES", "MAX_NUMBER", "MAX_PDF_BYTES",
    "MAX_PDF_PAGES", "MAX_PNML_BYTES", "MAX_RECORDS_BYTES", "MAX_STEPS", "NAME_PATTERN", "PARSE_FACTOR",
    "Fail", "check_cases", "check_matrix", "check_name", "check_output", "check_tree", "compose_yaml",
    "dense_fits", "failing", "load_json", "load_yaml", "memory_budget", "memory_limit", "number",
    "open_database", "read_bytes", "read_text",
]

MiB = 2**20
MAX_DOCUMENT_BYTES = 8 * MiB
"""A workflow or profile file: :data:`MAX_STEPS` steps with long prompts; libyaml parses 8 MB in about a second."""
MAX_RECORDS_BYTES = 256 * MiB
"""A JSON-lines file (traces, batch inputs, arrival times): about a million records."""
MAX_ATTACHMENT_BYTES = 20 * MiB
"""A file a case passes to a model (an image, a document): OpenAI's own limit for one image."""
MAX_PNML_BYTES = 64 * MiB
"""A PNML file: larger nets are over :data:`MAX_MATRIX_CELLS` anyway, and expat reads 64 MB in seconds."""
MAX_PDF_BYTES = 64 * MiB
"""A PDF a workflow reads (``load_pdf``): a long report with figures; pypdf parses it in seconds."""
MAX_PDF_PAGES = 2000
"""Pages of one PDF: a book; every page's text is a step output kept in the checkpoint store."""
MAX_DEPTH = 64
"""Nesting of lists and mappings in a document: a workflow needs about 6, an ``output_schema`` a dozen more."""
MAX_NODES = 500_000
"""Values in a document, YAML aliases expanded: what checking a document can afford in a few seconds."""
MAX_NUMBER = float(2**40)
"""The largest amount a document or flag may give (seconds, tokens, dollars, a distribution's mean):
about 1.1e12, far beyond any workflow and far below where sums over millions of cases overflow."""
MAX_COUNT = 2**40
"""The largest token count of a net (capacities, markings, arc weights, ``--final``): int64 markings
can add 8 million of them without overflowing."""
MAX_INT64 = 2**63 - 1
"""What numpy and C hold: no integer in a document may be larger in size, whatever its field."""
MAX_STEPS = 3000
"""Steps of a workflow: its net has about two places and two transitions per step, so past ~2,900 steps its
dense matrices would pass :data:`MAX_MATRIX_CELLS`; such a net is lowered with sparse arcs
(:mod:`petriflow.net.sparse`) and reduced before anything dense is built, so a chain of 3,000 steps (issue
10) is checked in a fraction of a second, and one that does not reduce gets a one-line refusal. Lowering,
loading and the reference check are linear in the steps; 3,000 keeps a whole ``petriflow check`` near a
second."""
MAX_ATTEMPTS = 100
"""Attempts of a step (its retry counter place holds this many tokens)."""
MAX_LOOP = 100_000
"""Passes of a loop (its counter place)."""
MAX_MAP_ITEMS = 1000
"""Items of a map step (the net spawns one branch per item)."""
MAX_MATRIX_CELLS = 2**25
"""``transitions x places`` of a net: ``pre`` and ``post`` are dense int64 matrices, 256 MiB each at this
size, and verifying a net needs a few more of the same shape."""
CASE_BYTES = 300
"""What a simulation keeps per case (its latency, cost and path), measured on the QA router."""
MAX_CASES = 2_000_000
"""Cases one simulation may run: their records stay under 600 MB (``MAX_CASES * CASE_BYTES``)."""
MAX_NAME = 256
"""Characters of a name (a PNML id or label, a trace's step, model or branch)."""
NAME_PATTERN = f"^[^{UNPRINTABLE}]{{1,{MAX_NAME}}}$"
"""A name: 1 to :data:`MAX_NAME` characters, none of them unprintable (see :data:`petriflow.errors.UNPRINTABLE`)."""
_NAME = re.compile(NAME_PATTERN)


class Fail(Protocol):
    """How a loader turns a refusal into its own error: its class, its file, the line when known."""

    def __call__(self, message: str, *, hint: str, line: int | None = None) -> InputError: ...


def failing(error: type[InputError], where: str) -> Fail:
    """The usual :data:`Fail`: ``error(message, where="WHERE:LINE", hint=hint)``."""

    def fail(message: str, *, hint: str, line: int | None = None) -> InputError:
        return error(message, where=f"{where}:{line}" if line else where, hint=hint)

    return fail


# -- files ---------------------------------------------------------------------------------------------------------

def read_bytes(path: str | os.PathLike[str], *, what: str, max_bytes: int, fail: Fail) -> bytes:
    """The content of a regular file of at most ``max_bytes`` bytes.

    The file is opened without blocking and checked with ``fstat`` before a
    byte is read, so a FIFO, a device or a directory (a symlink is followed
    to what it names) is refused instead of blocking or reading forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise fail(f"cannot read {what}: {err.strerror}", hint="check the path and its permissions") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # before fdopen, which refuses a directory with its own IsADirectoryError
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise fail(f"cannot read {what}: not a regular file but {kind}", hint="give the path of a regular file")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as err:
            raise fail(f"cannot read {what}: {err.strerror}", hint="check the file") from None
    if len(data) > max_bytes:
        raise fail(f"cannot read {what}: larger than {max_bytes // MiB} MiB", hint="petriflow reads files up to that size")
    budget = memory_budget()
    if budget is not None and len(data) * PARSE_FACTOR > budget:
        raise fail(f"cannot read {what}: parsing its {len(data):,} bytes takes about "
                   f"{len(data) * PARSE_FACTOR / MiB:,.0f} MiB, more than --max-memory {budget / MiB:,.0f} MiB",
                   hint="raise --max-memory, or split the file")
    return data


def read_text(path: str | os.PathLike[str], *, what: str, max_bytes: int, fail: Fail) -> str:
    """A regular UTF-8 text file (see :func:`read_bytes`); a binary file is refused with the byte where it fails."""
    data = read_bytes(path, what=what, max_bytes=max_bytes, fail=fail)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise fail(f"cannot read {what}: not UTF-8 text (byte {err.start})", line=line,
                   hint="give a text file saved as UTF-8, not a binary one") from None


def check_output(path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str] | None], what: str,
                 fail: Fail, makes_directory: bool = False) -> Path:
    """``path`` as somewhere to write: its directory exists, it is not one of ``inputs`` and not a special file.

    Checked before any work is done, so a run of minutes does not end in a
    missing directory, and ``fit -o wf.yaml --workflow wf.yaml`` does not
    replace the workflow with a profile. ``makes_directory``: the writer
    creates a missing directory itself.
    """
    out = Path(path)
    for given in inputs:
        if given is not None and _same_file(out, Path(given)):
            raise fail(f"the {what} '{out}' is also an input", hint="write it to another file")
    if out.exists() and not out.is_file():
        raise fail(f"the {what} '{out}' exists and is not a regular file", hint="write it to a file path")
    if not makes_directory and not out.parent.is_dir():
        raise fail(f"cannot write the {what} '{out}': no directory '{out.parent}'",
                   hint="create the directory first, or write elsewhere")
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def open_database(path: str | os.PathLike[str], *, what: str, fail: Fail, **connect: Any) -> sqlite3.Connection:
    """An SQLite connection to ``path`` (created when missing) that passed ``PRAGMA quick_check``.

    A FIFO blocks SQLite's first read and ``/dev/zero`` reads as an empty
    database until the first write fails, so only a regular file is opened;
    a corrupt page is found here, as one clear error, instead of in the
    middle of a run as ``database disk image is malformed``.
    """
    import sqlite3

    p = Path(path)
    if p.exists() and not p.is_file():
        raise fail(f"the {what} is not a regular file", hint="pass the path of an SQLite file, or of a new one")
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        db: sqlite3.Connection = sqlite3.connect(str(p), **connect)
        problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as err:
        raise fail(f"cannot open the {what}: {err}", hint="pass a new file, or one petriflow wrote") from None
    if problems != ["ok"]:
        db.close()
        found = [line for text in problems for line in str(text).splitlines() if not line.startswith("***")]
        found = found or [str(problems[0])]
        raise fail(f"the {what} is corrupt ({len(found)} problems, the first: {printable(found[0], limit=200)})",
                   hint="restore it from a copy, or pass a new file (what it held is lost)")
    return db


# -- documents -----------------------------------------------------------------------------------------------------

def compose_yaml(text: str, *, fail: Fail) -> Any:
    """The YAML node graph of ``text`` (None for an empty document), within :data:`MAX_DEPTH` and :data:`MAX_NODES`.

    The budget is counted on the parser's events first, which needs no
    recursion and no memory per value: an anchor's size is remembered, and an
    alias adds it, so an alias bomb is refused after reading its few hundred
    bytes instead of being expanded.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses 8 MB in a second, PyYAML in 30
    try:
        _yaml_budget(yaml.parse(text, Loader=loader), fail)
        return yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise fail(f"invalid YAML: {err.problem}", line=mark.line + 1 if mark else None,
                   hint="fix the syntax at that line (indentation, a missing ':' or quote)") from None
    except yaml.YAMLError as err:  # the reader's refusal of a control character has no mark
        raise fail(f"invalid YAML: {str(err).splitlines()[0]}", hint="remove control characters from the file") from None


def _yaml_budget(events: Iterable[Any], fail: Fail) -> None:
    import yaml

    sizes: dict[str, int] = {}  # anchor -> values it stands for
    open_: list[tuple[int, str | None]] = []  # per open collection: values so far when it opened, its anchor
    total = 0
    for ev in events:
        if isinstance(ev, yaml.AliasEvent):
            total += sizes.get(ev.anchor or "", 1)
        elif isinstance(ev, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            total += 1
            if isinstance(ev, yaml.CollectionStartEvent):
                open_.append((total - 1, ev.anchor))
                if len(open_) > MAX_DEPTH:
                    raise fail(f"the document nests deeper than {MAX_DEPTH} levels", line=_line(ev),
                               hint="flatten it; a workflow needs a few levels")
            elif ev.anchor is not None:
                sizes[ev.anchor] = 1
        elif isinstance(ev, yaml.CollectionEndEvent):
            start, anchor = open_.pop()
            if anchor is not None:
                sizes[anchor] = total - start
        if total > MAX_NODES:
            hint = "an alias that repeats an alias multiplies; write it out" if sizes else "split it or make it smaller"
            raise fail(f"the document holds more than {MAX_NODES} values (YAML aliases expanded)",
                       line=_line(ev), hint=hint)


def _line(event: Any) -> int | None:
    mark = event.start_mark
    return None if mark is None else int(mark.line) + 1


def load_yaml(text: str, *, fail: Fail) -> Any:
    """A YAML document as Python data, within the budgets of :func:`compose_yaml` and :func:`check_tree`."""
    import yaml

    node = compose_yaml(text, fail=fail)
    if node is None:
        return None
    try:
        doc = yaml.SafeLoader("").construct_document(node)
    except (yaml.YAMLError, ValueError) as err:  # e.g. an integer of 5000 digits
        raise fail(f"invalid YAML: {str(err).splitlines()[0]}", hint="fix the value") from None
    check_tree(doc, fail=fail)
    return doc


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def load_json(text: str, *, fail: Fail, checked: bool = True) -> Any:
    """Strict JSON (no trailing comma, no ``NaN``) within :data:`MAX_DEPTH`, checked by :func:`check_tree`.

    The depth is counted on the brackets outside strings before parsing,
    because Python's JSON decoder recurses once per level. ``checked=False``
    reads ``NaN`` and ``Infinity`` as floats and leaves :func:`check_tree` out,
    for a caller that checks every value itself and can name its key.
    """
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        raise fail(f"the JSON nests deeper than {MAX_DEPTH} levels", hint="flatten it")

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        doc = json.loads(text, parse_constant=no_constant if checked else float)
    except json.JSONDecodeError as err:
        raise fail(f"invalid JSON: {err.msg}", line=err.lineno, hint="fix the syntax at that line") from None
    except ValueError as err:  # NaN, Infinity, or an integer of more than 4300 digits
        raise fail(f"invalid JSON: {err}", hint="write finite numbers") from None
    if checked:
        check_tree(doc, fail=fail)
    return doc


def check_tree(doc: Any, *, fail: Fail, line_of: Callable[[tuple[Any, ...]], int | None] | None = None) -> None:
    """Every value of a parsed document within limits: depth, count, finite floats, integers within 64 bits.

    Iterative, so neither a deep nor a cyclic structure (one built in Python)
    can overflow the stack; ``line_of`` maps a path of keys to its line.
    """
    stack: list[tuple[Any, tuple[Any, ...]]] = [(doc, ())]
    seen = 0
    while stack:
        value, path = stack.pop()
        seen += 1
        where = ".".join(map(str, path)) or "the document"
        line = line_of(path) if line_of else None
        if seen > MAX_NODES:
            raise fail(f"the document holds more than {MAX_NODES} values", line=line, hint="make it smaller")
        if len(path) > MAX_DEPTH:
            raise fail(f"{where}: nested deeper than {MAX_DEPTH} levels", line=line, hint="flatten it")
        if isinstance(value, float) and not math.isfinite(value):
            raise fail(f"{where}: {value} is not a finite number", line=line,
                       hint="give a finite number; to set no limit, leave the key out")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT64:
            raise fail(f"{where}: {_shown(value)} does not fit in 64 bits", line=line,
                       hint="give a smaller number")
        if isinstance(value, dict):
            stack.extend((v, (*path, k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(value))


# -- numbers and names ---------------------------------------------------------------------------------------------

def number(value: Any, *, what: str, fail: Fail, lo: float = 0.0, hi: float = MAX_NUMBER, lo_open: bool = False,
           integer: bool = False) -> float:
    """``value`` as a finite number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``), an integer if asked.

    Returns a float (an int when ``integer``); bools are not numbers here, as
    ``True`` in a YAML file is a mistake, not a 1.
    """
    kind = "an integer" if integer else "a number"
    is_number = isinstance(value, (int,) if integer else (int, float)) and not isinstance(value, bool)
    finite = is_number and not (isinstance(value, float) and not math.isfinite(value))
    if finite and (lo < value if lo_open else lo <= value) and value <= hi:
        return int(value) if integer else float(value)
    if hi < MAX_NUMBER or (finite and value > hi):
        bounds = f"in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}]"
    else:
        bounds = f"{'>' if lo_open else '>='} {_fmt(lo)}"
    prefix = "a finite number " if is_number and not finite else f"{kind} " if integer or not is_number else ""
    raise fail(f"{what} must be {prefix}{bounds}, got {_shown(value)}", hint=f"give {kind} {bounds}")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) <= MAX_COUNT else f"{x:g}"


def _shown(value: Any) -> str:
    """A value as a message shows it: short, printable, and no ``repr`` of a 5000-digit integer (which raises)."""
    if isinstance(value, int) and abs(value) > 10**30:
        return f"an integer of {value.bit_length()} bits"
    return printable(repr(value), limit=60)


def check_name(text: Any, *, what: str, fail: Fail) -> str:
    """A name (an id, a label) of 1 to :data:`MAX_NAME` printable characters; see :data:`NAME_PATTERN`."""
    if not isinstance(text, str) or not _NAME.match(text):
        raise fail(f"{what} {printable(repr(text), limit=80)} is not a name",
                   hint=f"use 1 to {MAX_NAME} printable characters (no control characters)")
    return text


# -- sizes ---------------------------------------------------------------------------------------------------------

PARSE_FACTOR = 100
"""Memory a loaded document takes per byte of its file, at most: YAML's nodes and then the workflow's own
records (measured on a 3,000-step chain: 18 MB for 184 KB of YAML). Reading refuses a file whose parse would
pass the memory budget, before parsing it."""

_BUDGET: ContextVar[int | None] = ContextVar("petriflow_memory_budget", default=None)


def memory_budget() -> int | None:
    """The bytes the current ``--max-memory`` allows (:func:`memory_limit`), or None for no budget."""
    return _BUDGET.get()


@contextmanager
def memory_limit(max_bytes: int | None) -> Iterator[None]:
    """Hold every stage inside the block to ``max_bytes``: reading (:data:`PARSE_FACTOR`), the dense matrices of
    a net (:func:`check_matrix`; lowering keeps a net sparse rather than pass it, :func:`dense_fits`) and the
    state store of a search (which reads it as its default ``max_bytes``).

    One owner for the budget, so that ``check --max-memory`` bounds loading and structural analysis as well
    as exploration; each stage refuses before it allocates, in one line that names the stage.
    """
    if max_bytes is not None and max_bytes < 1:
        raise InputError(f"a memory budget of {max_bytes} bytes", where="--max-memory", hint="give a positive size")
    token = _BUDGET.set(max_bytes)
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _dense_bytes(transitions: int, places: int) -> int:
    """``pre`` and ``post`` as dense int64 matrices."""
    return 2 * transitions * places * 8


def dense_fits(transitions: int, places: int) -> bool:
    """Whether a net's dense matrices fit both :data:`MAX_MATRIX_CELLS` and the memory budget."""
    budget = memory_budget()
    return transitions * places <= MAX_MATRIX_CELLS and (budget is None or _dense_bytes(transitions, places) <= budget)


def check_matrix(transitions: int, places: int, *, fail: Fail, line: int | None = None,
                 hint: str = "petriflow stores a net as dense transition x place matrices; reduce or split the net"
                 ) -> None:
    """Refuse a net whose dense ``pre``/``post`` matrices would pass :data:`MAX_MATRIX_CELLS` or the memory
    budget (:func:`memory_limit`), before allocating them."""
    if transitions * places > MAX_MATRIX_CELLS:
        raise fail(f"a net of {transitions} transitions and {places} places (at least) has more than "
                   f"{MAX_MATRIX_CELLS:,} transition-place pairs: its dense arc matrices would take more than "
                   f"the {2 * MAX_MATRIX_CELLS * 8 // MiB} MiB petriflow allows", line=line, hint=hint)
    budget = memory_budget()
    if budget is not None and _dense_bytes(transitions, places) > budget:
        raise fail(f"a net of {transitions} transitions and {places} places: its dense arc matrices would take "
                   f"{_dense_bytes(transitions, places) / MiB:,.1f} MiB, more than --max-memory "
                   f"{budget / MiB:,.1f} MiB", line=line, hint=f"raise --max-memory; {hint}")


def check_cases(cases: Any, *, fail: Fail) -> int:
    """The number of cases to simulate, at least 1 and at most :data:`MAX_CASES` (which says how many fit)."""
    if isinstance(cases, int) and not isinstance(cases, bool) and cases < 1:
        raise fail(f"need at least 1 case, got {cases}", hint="simulate 1 case or more")
    if isinstance(cases, int) and not isinstance(cases, bool) and cases > MAX_CASES:
        need = cases * CASE_BYTES / 2**30
        raise fail(f"{cases} cases would keep about {need:.1f} GiB of per-case records; at most {MAX_CASES} fit "
                   f"in petriflow's budget of {MAX_CASES * CASE_BYTES // MiB} MiB",
                   hint="simulate fewer cases, or several runs with different --seed")
    return int(number(cases, what="the number of cases", lo=1, hi=MAX_CASES, integer=True, fail=fail))
