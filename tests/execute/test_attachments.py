"""Images and files as case inputs: what the model server receives, and what is refused before it.

The fault server speaks the OpenAI protocol over real HTTP and keeps the
``messages`` of the chat requests it received, so each test asserts the wire
format itself: the content parts, their order, and that the data URL decodes
to the very bytes of the file. Runs go through the CLI, as a user's do.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petriflow.errors import InputError
from petriflow.execute.attachments import content_part, parse_ref, resolve_case
from petriflow.execute.pricing import FILE_PART_TOKENS, estimate_tokens
from petriflow.execute.tools import StepCall, render_content
from tests.cli_in_process import petriflow
from tests.execute.fault_server import FaultServer


def _png(tmp_path: Path, name: str = "pic.png", colour: str = "red") -> Path:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (6, 4), colour).save(buf, "PNG")
    path = tmp_path / name
    path.write_bytes(buf.getvalue())
    return path


def _workflow(tmp_path: Path, fs: FaultServer, *, accepts: str | None = "[text, image, file]",
              prompt: str = "Read the sign: {image} and say if it is rude", kind: str = "chat") -> Path:
    model = f"    accepts: {accepts}\n" if accepts else ""
    body = (f"name: vision\nmodels:\n  eye:\n    name: fault-model\n    base_url: {fs.base_url}\n{model}"
            f"steps:\n  - id: look\n    kind: {kind}\n    model: eye\n    prompt: \"{prompt}\"\n")
    if kind == "classify":
        body += "    labels: {rude: [go away], polite: [thank you]}\n"
    path = tmp_path / "vision.yaml"
    path.write_text(body)
    return path


def _run(tmp_path: Path, wf: Path, *inputs: str) -> Any:
    return petriflow("run", wf, *inputs, "--db", tmp_path / "runs.sqlite", "--json")


def _parts(fault_server: FaultServer) -> list[Any]:
    chats = fault_server.chats()
    assert len(chats) == 1, chats
    (user,) = [m for m in chats[0] if m["role"] == "user"]
    assert isinstance(user["content"], list), user
    return list(user["content"])


def _decoded(part: dict[str, Any]) -> tuple[str, bytes]:
    head, data = part["image_url"]["url"].split(",", 1)
    return head, base64.b64decode(data)


def test_an_image_field_reaches_the_model_as_an_image_url_part_between_the_texts(
        tmp_path: Path, fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    png = _png(tmp_path)
    monkeypatch.chdir(tmp_path)
    res = _run(tmp_path, _workflow(tmp_path, fault_server), "--input", "image=@pic.png")
    assert res.code == 0, res.err
    parts = _parts(fault_server)
    assert [p["type"] for p in parts] == ["text", "image_url", "text"]
    assert parts[0]["text"] == "Read the sign: " and parts[2]["text"] == " and say if it is rude"
    head, data = _decoded(parts[1])
    assert head == "data:image/png;base64" and data == png.read_bytes()
    assert json.loads(res.out)["cases"][0]["ok"]


def test_a_jsonl_file_field_is_read_next_to_the_jsonl_file_and_a_list_is_one_part_each(
        tmp_path: Path, fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    red, blue = _png(data_dir, "red.png", "red"), _png(data_dir, "blue.png", "blue")
    (data_dir / "cases.jsonl").write_text(json.dumps({"image": [{"path": "red.png"}, {"path": "blue.png"}]}) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    res = _run(tmp_path, _workflow(tmp_path, fault_server, prompt="{image}"), "--inputs", data_dir / "cases.jsonl")
    assert res.code == 0, res.err
    parts = _parts(fault_server)
    assert [_decoded(p)[1] for p in parts] == [red.read_bytes(), blue.read_bytes()]


def test_a_file_that_is_not_an_image_goes_as_a_file_part_and_a_data_url_as_given(
        tmp_path: Path, fault_server: FaultServer) -> None:
    doc = tmp_path / "notes.txt"
    doc.write_text("meeting at noon")
    url = "data:image/gif;base64," + base64.b64encode(b"GIF89a-tiny").decode()
    case = tmp_path / "c.jsonl"
    case.write_text(json.dumps({"image": [{"path": "notes.txt"}, {"url": url}]}) + "\n")
    res = _run(tmp_path, _workflow(tmp_path, fault_server, prompt="{image}"), "--inputs", case)
    assert res.code == 0, res.err
    file_part, image_part = _parts(fault_server)
    assert file_part["type"] == "file" and file_part["file"]["filename"] == "notes.txt"
    head, data = file_part["file"]["file_data"].split(",", 1)
    assert head == "data:text/plain;base64" and base64.b64decode(data) == b"meeting at noon"
    assert image_part == {"type": "image_url", "image_url": {"url": url}}


def test_a_model_declared_text_only_is_never_sent_the_image(tmp_path: Path, fault_server: FaultServer) -> None:
    _png(tmp_path)
    res = _run(tmp_path, _workflow(tmp_path, fault_server, accepts="[text]"), "--input", f"image=@{tmp_path}/pic.png")
    assert res.code == 1
    error = json.loads(res.out)["cases"][0]["error"]
    assert "declared to read only text" in error and "look" in error
    assert fault_server.counts()["total"] == 0  # refused before the call: nothing was dropped on the way


def test_the_local_chat_model_reads_text_only(tmp_path: Path, fault_server: FaultServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """SmolLM2's server answers 500 to an image part; petriflow knows and says so without calling it."""
    monkeypatch.setenv("PETRIFLOW_LOCAL_BASE_URL", fault_server.base_url)
    _png(tmp_path)
    wf = tmp_path / "local.yaml"
    wf.write_text("name: local\nmodels: {small: {name: SmolLM2-135M-Instruct, base_url: local}}\n"
                  "steps:\n  - {id: look, kind: chat, model: small, prompt: 'what is in {image}?'}\n")
    res = _run(tmp_path, wf, "--input", f"image=@{tmp_path}/pic.png")
    assert res.code == 1 and "declared to read only text" in json.loads(res.out)["cases"][0]["error"]
    assert fault_server.counts()["total"] == 0
    res = _run(tmp_path, wf, "--input", "image=@@not-a-file")  # @@: the text "@not-a-file"
    assert res.code == 0, res.err
    assert fault_server.chats()[-1][-1]["content"] == "what is in @not-a-file?"


def test_a_step_that_cannot_carry_a_file_says_so(tmp_path: Path, fault_server: FaultServer) -> None:
    _png(tmp_path)
    wf = _workflow(tmp_path, fault_server, prompt="{image}", kind="classify")
    res = _run(tmp_path, wf, "--input", f"image=@{tmp_path}/pic.png")
    assert res.code == 1
    assert "only a chat step's prompt can carry" in json.loads(res.out)["cases"][0]["error"]
    assert fault_server.counts()["paths"].get("/v1/embeddings", 0) <= 1  # the examples, never the image


@pytest.mark.parametrize(("inputs", "said"), [
    (("--input", "image=@missing.png"), "--input, field 'image'"),
    (("--input", "image=@."), "not a regular file"),
    (("--inputs", "BAD_JSONL"), "c.jsonl:2, field 'image'"),
])
def test_a_bad_file_input_is_one_line_and_exit_2_before_any_call(
        tmp_path: Path, fault_server: FaultServer, monkeypatch: pytest.MonkeyPatch, inputs: tuple[str, ...],
        said: str) -> None:
    monkeypatch.chdir(tmp_path)
    _png(tmp_path)
    bad = tmp_path / "c.jsonl"
    bad.write_text(json.dumps({"image": {"path": "pic.png"}}) + "\n"
                   + json.dumps({"image": {"path": "pic.png", "url": "https://x/y.png"}}) + "\n")
    res = _run(tmp_path, _workflow(tmp_path, fault_server), *(str(bad) if a == "BAD_JSONL" else a for a in inputs))
    assert res.code == 2 and said in res.refusal, res.err
    assert fault_server.counts()["total"] == 0


@pytest.mark.parametrize(("value", "said"), [
    ({"url": "data:image/png;base64,@@@"}, "base64 is not valid"),
    ({"url": "data:image/png,plain"}, "data:MIME;base64,DATA"),
    ({"url": "ftp://host/x.png"}, "http(s):// or data:"),
    ({"path": "empty.bin"}, "is empty"),
])
def test_malformed_references_are_refused_with_the_field(tmp_path: Path, value: dict[str, str], said: str) -> None:
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(InputError, match=None) as err:
        resolve_case({"image": value}, where="case 3", base=tmp_path)
    assert said in str(err.value) and "case 3, field 'image'" in str(err.value)


def test_an_object_with_other_keys_is_data_not_a_file(tmp_path: Path) -> None:
    case = {"meta": {"path": "nowhere.png", "caption": "a"}, "n": 1}
    assert resolve_case(case, where="case 0", base=tmp_path) == case


def test_an_image_costs_its_budget_estimate_in_tokens_not_in_base64(tmp_path: Path) -> None:
    from PIL import Image

    big = tmp_path / "big.png"
    Image.effect_noise((400, 400), 64).save(big)  # noise does not compress: ~160 kB, ~210 kB of base64
    part = content_part(parse_ref({"path": str(big)}, where="t"))
    assert len(part["image_url"]["url"]) > 200_000
    msgs = [{"role": "user", "content": [{"type": "text", "text": "x" * 30}, part]}]
    assert estimate_tokens(msgs) == 10 + 1 + FILE_PART_TOKENS + 4


def test_a_file_changed_after_the_run_started_is_refused_not_sent(tmp_path: Path) -> None:
    png = _png(tmp_path)
    case = resolve_case({"image": {"path": "pic.png"}}, where="case 0", base=tmp_path)
    assert case["image"]["path"] == str(png) and len(case["image"]["sha256"]) == 64
    assert content_part(case["image"])["type"] == "image_url"  # unchanged: sent
    _png(tmp_path, colour="blue")  # the same name, other pixels
    with pytest.raises(InputError, match="has changed"):
        content_part(case["image"])


_TEXT = st.text(st.characters(blacklist_characters="{}\x00", blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(st.one_of(_TEXT, st.sampled_from(["{a}", "{b}", "{note}"])), max_size=8))
def test_content_parts_are_the_template_in_order_with_each_file_in_its_place(pieces: list[str]) -> None:
    """Property: the text parts, joined, are the template's text with the notes filled in; the files come
    out in the order the template names them; nothing else is added or dropped."""
    files = {"a": {"url": "data:image/png;base64,iVBORw0KGgo="}, "b": {"url": "data:image/gif;base64,R0lGODlh"}}
    call = StepCall("r", 0, "k", {**files, "note": "n"}, {})
    content = render_content("".join(pieces), call, "s")
    text = "".join(p for p in pieces if p not in ("{a}", "{b}")).replace("{note}", "n")
    named = [p[1] for p in pieces if p in ("{a}", "{b}")]
    if not named:
        assert content == text
        return
    assert isinstance(content, list)
    assert "".join(p["text"] for p in content if p["type"] == "text") == text
    assert all(p["text"] for p in content if p["type"] == "text")
    assert [p["image_url"]["url"] for p in content if p["type"] == "image_url"] == [files[n]["url"] for n in named]
