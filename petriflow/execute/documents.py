"""Documents as case inputs: a PDF read into pages, pages cut into chunks with stable ids.

A workflow names a PDF by a case field (``--input pdf=paper.pdf``) and reads it
with two built-in Python steps::

    - {id: load, kind: python, function: "petriflow.execute.documents:load_pdf"}
    - {id: chunk, kind: python, after: [load], function: "petriflow.execute.documents:chunk_pages",
       config: {kwargs: {size: 600}}}

``load_pdf`` gives ``{"path", "title", "pages": [{"page": n, "text"}]}``;
``chunk_pages`` gives ``{"chunks": [{"id": "p3c2", "page": 3, "text"}]}``:
chunk 2 of page 3, the same ids for the same file every time, so a synthesis
can cite ``p3c2`` and a later step can check that the citation exists. Text
comes out of ``pypdf`` (maintained, pure Python); a file that is missing, not a
PDF, damaged or encrypted with a password is one :class:`InputError` naming the
file and what to do, never a traceback.

>>> chunk_text("One. Two three. Four.", size=10)
['One.', 'Two three.', 'Four.']
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from petriflow.errors import InputError
from petriflow.limits import MAX_PDF_BYTES, MAX_PDF_PAGES, failing, read_bytes

__all__ = ["chunk_pages", "chunk_text", "find_file", "load_pdf", "read_pdf"]

CHUNK_ID = re.compile(r"^p([1-9][0-9]*)c([1-9][0-9]*)$")
"""What a chunk id looks like: ``p{page}c{n}``, both counted from 1."""


def find_file(name: str, *, base: str | os.PathLike[str] | None) -> Path:
    """The file a case field names: absolute as is; relative, next to the workflow file first, then here.

    The workflow and its sample data travel together (``--input pdf=data/paper.pdf``
    works from any directory), and a path typed relative to the current
    directory still works (``--input pdf=models/x/data/paper.pdf``).
    """
    path = Path(os.path.expanduser(name))
    if path.is_absolute():
        tried = [path]
    else:
        tried = ([Path(base) / path] if base is not None else []) + [Path.cwd() / path]
    for p in tried:
        if p.exists():
            return p
    where = " or ".join(str(p) for p in tried)
    raise InputError(f"no file '{name}' (looked for {where})", where=name,
                     hint="give the path of a PDF, absolute or relative to the workflow file")


def read_pdf(path: str | os.PathLike[str]) -> tuple[str, list[str]]:
    """The title (from the metadata, or ``""``) and the text of each page of the PDF at ``path``."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, PyPdfError

    where = str(path)
    data = read_bytes(path, what="the PDF", max_bytes=MAX_PDF_BYTES, fail=failing(InputError, where))
    if not data.lstrip()[:5] == b"%PDF-":
        raise InputError("not a PDF file (it does not start with %PDF-)", where=where, hint="give a PDF document")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InputError("the PDF is encrypted with a password", where=where,
                             hint="decrypt it first (for example `qpdf --decrypt --password=... in.pdf out.pdf`)")
        n = len(reader.pages)
        if n > MAX_PDF_PAGES:
            raise InputError(f"the PDF has {n} pages, more than {MAX_PDF_PAGES}", where=where,
                             hint="split it, or give the pages the workflow needs")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta = reader.metadata
        title = str(meta.get("/Title") or "") if meta is not None else ""
    except InputError:
        raise
    except DependencyError as exc:  # AES encryption without the `cryptography` package
        raise InputError(f"cannot decrypt the PDF: {exc}", where=where,
                         hint="install `cryptography`, or decrypt the file first (qpdf --decrypt)") from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise InputError(f"cannot read the PDF: {type(exc).__name__}: {exc}", where=where,
                         hint="the file is damaged or not a PDF; open it in a viewer or re-export it") from None
    return title, pages


def load_pdf(inputs: Mapping[str, Any], *, case: Mapping[str, Any], workflow_dir: str | None = None,
             field: str = "pdf") -> dict[str, Any]:
    """The python step that reads the PDF the case field ``field`` names (``--input pdf=FILE``) into pages."""
    name = case.get(field)
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"the case has no field '{field}' naming a PDF", where=f"case field '{field}'",
                         hint=f"run it with --input {field}=PATH.pdf")
    path = find_file(name.strip(), base=workflow_dir)
    title, pages = read_pdf(path)
    if not any(t.strip() for t in pages):
        raise InputError("the PDF has no text layer (a scan?)", where=str(path),
                         hint="run OCR on it first, or give a PDF with selectable text")
    return {"path": str(path), "title": title,
            "pages": [{"page": i, "text": _clean(t)} for i, t in enumerate(pages, start=1)]}


_SPACE = re.compile(r"[ \t\r\f\v]+")
_SENTENCE = re.compile(r"(?<=[^\s\d][.!?])\s+")  # not after "4." of a numbered heading


def _clean(text: str) -> str:
    """Spaces collapsed in each line, a line broken inside a paragraph joined, paragraphs kept apart."""
    lines = [_SPACE.sub(" ", ln).strip() for ln in text.splitlines()]
    paras, cur = [], []
    for ln in lines:
        if ln:
            cur.append(ln)
        elif cur:
            paras.append(" ".join(cur))
            cur = []
    if cur:
        paras.append(" ".join(cur))
    return "\n\n".join(paras)


def chunk_text(text: str, *, size: int = 600) -> list[str]:
    """``text`` cut into pieces of at most ``size`` characters, at paragraph, then sentence, then word ends.

    Joining the pieces with single spaces gives back the text's words in order
    (nothing is dropped or repeated); only a word longer than ``size`` is cut
    inside itself.
    """
    if size < 1:
        raise ValueError("size must be at least 1")
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        start = len(out)  # a chunk never spans two paragraphs
        for unit in _SENTENCE.split(para.strip()):
            for piece in _words_within(unit, size):
                if len(out) > start and len(out[-1]) + 1 + len(piece) <= size:
                    out[-1] = f"{out[-1]} {piece}"
                else:
                    out.append(piece)
    return out


def _words_within(unit: str, size: int) -> list[str]:
    words, out, cur = unit.split(), [], ""
    for w in words:
        while len(w) > size:
            if cur:
                out.append(cur)
                cur = ""
            out.append(w[:size])
            w = w[size:]
        if not w:
            continue
        if cur and len(cur) + 1 + len(w) > size:
            out.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    if cur:
        out.append(cur)
    return out


def chunk_pages(inputs: Mapping[str, Any], *, size: int = 600, over: str | None = None) -> dict[str, Any]:
    """The python step after ``load_pdf``: each page's text in chunks ``p{page}c{n}`` of at most ``size`` chars.

    ``over`` names the loading step (by default the one input that has ``pages``).
    """
    doc = inputs.get(over) if over else next((v for v in inputs.values() if isinstance(v, Mapping) and "pages" in v),
                                             None)
    if not isinstance(doc, Mapping) or not isinstance(doc.get("pages"), list):
        raise InputError("chunk_pages needs the output of load_pdf (with `pages`) as an input",
                         where=f"inputs {sorted(inputs)}", hint="put the load_pdf step in `after`")
    chunks = []
    for page in doc["pages"]:
        for n, text in enumerate(chunk_text(str(page.get("text", "")), size=size), start=1):
            chunks.append({"id": f"p{int(page['page'])}c{n}", "page": int(page["page"]), "text": text})
    return {"path": doc.get("path", ""), "title": doc.get("title", ""), "chunks": chunks}
