"""The PDF loader and the chunker, on the project's real sample PDF and on PDFs made broken on purpose.

The oracle for the text is the generator script's own paragraphs (what was
written into the PDF); pypdf's extraction must give back exactly those words,
page by page. Broken inputs are made with real tools (pypdf encrypts, bytes
are cut), and each must be one :class:`InputError` naming the file.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petriflow.errors import InputError
from petriflow.execute.documents import CHUNK_ID, chunk_pages, chunk_text, find_file, load_pdf, read_pdf

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "models" / "research_assistant" / "data"
SAMPLE = DATA / "sample.pdf"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_sample_pdf", DATA / "make_sample_pdf.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _words(text: str) -> list[str]:
    return text.split()


def test_the_sample_pdf_reads_back_as_the_text_it_was_made_from() -> None:
    gen = _generator()
    title, pages = read_pdf(SAMPLE)
    assert title == gen.TITLE
    assert len(pages) == len(gen.PAGES)
    for n, text in enumerate(pages, start=1):
        assert _words(text) == _words(" ".join(gen.paragraphs(n)))


def test_the_committed_sample_is_what_the_script_makes(tmp_path: Path) -> None:
    gen = _generator()
    gen.build(tmp_path / "again.pdf")
    assert (tmp_path / "again.pdf").read_bytes() == SAMPLE.read_bytes()


def test_chunks_have_stable_ids_and_give_back_every_word_of_their_page() -> None:
    doc = load_pdf({}, case={"pdf": str(SAMPLE)})
    out = chunk_pages({"load": doc}, size=300)
    assert out == chunk_pages({"load": load_pdf({}, case={"pdf": str(SAMPLE)})}, size=300)  # same file, same ids
    ids = [c["id"] for c in out["chunks"]]
    assert len(set(ids)) == len(ids)
    for page in doc["pages"]:
        mine = [c for c in out["chunks"] if c["page"] == page["page"]]
        assert [c["id"] for c in mine] == [f"p{page['page']}c{k}" for k in range(1, len(mine) + 1)]
        assert all(CHUNK_ID.match(c["id"]) and 0 < len(c["text"]) <= 300 for c in mine)
        assert _words(" ".join(c["text"] for c in mine)) == _words(page["text"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=80)
                | st.sampled_from(["\n", "\n\n", ". ", "! ", "4. "]), max_size=20), st.integers(1, 60))
def test_chunk_text_keeps_every_word_in_order_within_the_size(parts: list[str], size: int) -> None:
    text = "".join(parts)
    chunks = chunk_text(text, size=size)
    assert all(0 < len(c) <= size for c in chunks)
    joined = " ".join(chunks)
    if all(len(w) <= size for w in text.split()):
        assert _words(joined) == _words(text)
    else:  # a word longer than size is cut inside itself, nothing else changes
        assert "".join(joined.split()) == "".join(text.split())


def test_a_relative_path_is_looked_up_next_to_the_workflow_first_then_here(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "flow").mkdir()
    (tmp_path / "flow" / "doc.pdf").write_bytes(SAMPLE.read_bytes())
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert find_file("doc.pdf", base=tmp_path / "flow") == tmp_path / "flow" / "doc.pdf"
    (tmp_path / "here" / "only_here.pdf").write_bytes(b"%PDF-")
    assert find_file("only_here.pdf", base=tmp_path / "flow") == Path.cwd() / "only_here.pdf"
    out = load_pdf({}, case={"pdf": "doc.pdf"}, workflow_dir=str(tmp_path / "flow"))
    assert out["path"] == str(tmp_path / "flow" / "doc.pdf") and len(out["pages"]) == 3
    with pytest.raises(InputError, match=r"no file 'missing\.pdf'") as err:
        load_pdf({}, case={"pdf": "missing.pdf"}, workflow_dir=str(tmp_path / "flow"))
    assert str(tmp_path / "flow" / "missing.pdf") in str(err.value) and "--input" not in str(err.value)


def _encrypted(password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    w = PdfWriter(clone_from=PdfReader(SAMPLE))
    w.encrypt(user_password=password, owner_password="owner", algorithm="RC4-128")
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def _blank() -> bytes:
    from pypdf import PdfWriter

    w = PdfWriter()
    w.add_blank_page(width=200, height=200)
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


@pytest.mark.parametrize(("content", "message"), [
    (lambda: _encrypted("secret"), "encrypted with a password"),
    (lambda: b"hello, I am text\n", "not a PDF file"),
    (lambda: SAMPLE.read_bytes()[:600], "cannot read the PDF"),
    (lambda: SAMPLE.read_bytes().replace(b"/Pages", b"/Pag\x00s"), "cannot read the PDF"),
    (_blank, "no text layer"),
])
def test_a_bad_pdf_is_one_input_error_naming_the_file(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "bad.pdf"
    path.write_bytes(content())  # type: ignore[operator]
    with pytest.raises(InputError, match=message) as err:
        load_pdf({}, case={"pdf": str(path)})
    assert str(path) in str(err.value)


def test_a_pdf_encrypted_with_an_empty_password_is_read(tmp_path: Path) -> None:
    path = tmp_path / "open.pdf"
    path.write_bytes(_encrypted(""))
    assert [p["text"] for p in load_pdf({}, case={"pdf": str(path)})["pages"]] == \
        [p["text"] for p in load_pdf({}, case={"pdf": str(SAMPLE)})["pages"]]


def test_a_directory_or_a_case_without_the_field_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a regular file"):
        load_pdf({}, case={"pdf": str(tmp_path)})
    with pytest.raises(InputError, match=r"--input pdf=PATH\.pdf"):
        load_pdf({}, case={"question": "hi"})
    with pytest.raises(InputError, match=r"--input paper=PATH\.pdf"):
        load_pdf({}, case={"pdf": "x"}, field="paper")


WORKFLOW = """
name: pdf_only
steps:
  - {id: load, kind: python, function: "petriflow.execute.documents:load_pdf"}
  - {id: chunk, kind: python, after: [load], function: "petriflow.execute.documents:chunk_pages",
     config: {kwargs: {size: 200}}}
"""


def _cli(wf: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "petriflow", "run", str(wf), *args, "--json"], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=120)


def test_the_cli_reads_a_pdf_named_relative_to_the_workflow_and_refuses_a_missing_one(tmp_path: Path) -> None:
    import json

    flow = tmp_path / "flow"
    (flow / "data").mkdir(parents=True)
    (flow / "data" / "paper.pdf").write_bytes(SAMPLE.read_bytes())
    (flow / "wf.yaml").write_text(WORKFLOW)
    (tmp_path / "elsewhere").mkdir()
    ok = _cli(flow / "wf.yaml", "--input", "pdf=data/paper.pdf", "--db", str(tmp_path / "r.sqlite"),
              cwd=tmp_path / "elsewhere")
    assert ok.returncode == 0, ok.stderr
    chunks = json.loads(ok.stdout)["cases"][0]["output"]["chunks"]
    assert {c["page"] for c in chunks} == {1, 2, 3} and all(len(c["text"]) <= 200 for c in chunks)
    bad = _cli(flow / "wf.yaml", "--input", "pdf=data/nope.pdf", "--db", str(tmp_path / "r2.sqlite"),
               cwd=tmp_path / "elsewhere")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    told = bad.stdout + bad.stderr
    assert re.search(r"no file 'data/nope\.pdf'", told)
    assert "fix that input" in told and "add retries" not in told  # a retry would not find the file either
