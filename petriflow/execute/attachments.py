"""Files as case inputs: images (and other files) that a chat prompt carries as OpenAI content parts.

**The one rule.** A case field is a *file* when its value is an object with
exactly one of ``path`` (a local file) or ``url`` (``http(s)://`` or a
``data:`` URL), and optionally ``type`` (its MIME type) and ``sha256``; a list of such
objects is a list of files. On the command line ``--input image=@photo.png``
is short for ``{"path": "photo.png"}`` (``@@`` keeps a literal ``@``). A
relative path is read from the directory of the ``--inputs`` file that names
it (the current directory for ``--input``), and is stored absolute, so a
resume or a Python step finds the same file, with the ``sha256`` of its bytes,
so the run's identity covers the content and a file changed before a resume
is refused rather than sent.

**Where it goes.** In a ``chat`` step's ``prompt`` (or ``system``), ``{image}``
becomes a content part at that place in the message: an image as
``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``
(an ``http(s)`` URL is sent as is), any other file as
``{"type": "file", "file": {"filename": ..., "file_data": "data:...;base64,..."}}``.
A Python step reads the reference itself (``case["image"]["path"]``, or
:func:`read_file`). Any other step kind cannot read a file from a template
and says so, so nothing is dropped silently: nor is an image sent to a model
that is declared text-only (``accepts: [text]``, as the local SmolLM2 is),
which fails the step with a message that says what to do instead.

>>> ref = parse_ref({"url": "data:image/png;base64,iVBORw0KGgo="}, where="case 0, field 'image'")
>>> ref.type, content_part(ref)["type"]
('image/png', 'image_url')
>>> is_file_ref({"path": "a.png", "caption": "x"})   # another key: plain data, not a file
False
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from petriflow.errors import InputError
from petriflow.limits import MAX_ATTACHMENT_BYTES, failing, read_bytes

__all__ = ["FileRef", "content_part", "is_file_ref", "parse_ref", "part_kind", "read_file", "resolve_case",
           "shorthand"]

_KEYS = frozenset({"path", "url", "type", "sha256"})
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[\w.+-]+)*);base64,(.*)", re.DOTALL)
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
          (b"GIF89a", "image/gif"), (b"%PDF-", "application/pdf"))
_HOW = 'give {"path": FILE} or {"url": URL} (on the command line: KEY=@FILE)'


@dataclass(frozen=True)
class FileRef:
    """A file a case names: a local ``path`` or a ``url`` (http(s) or data:), and its MIME ``type``."""

    path: str | None
    url: str | None
    type: str
    sha256: str | None = None  # of a local file's bytes when the run started: a changed file is refused

    @property
    def name(self) -> str:
        """The file name a ``file`` content part carries."""
        return Path(self.path).name if self.path else "upload"

    def to_json(self) -> dict[str, str]:
        if self.path:
            return {"path": self.path, "type": self.type, **({"sha256": self.sha256} if self.sha256 else {})}
        return {"url": self.url or "", "type": self.type}


def _meant_as_file(value: Any) -> bool:
    """An object of only file keys that names a path or URL: a file, or a mistaken one to refuse."""
    return isinstance(value, Mapping) and bool(value) and set(value) <= _KEYS and bool({"path", "url"} & set(value))


def is_file_ref(value: Any) -> bool:
    """Whether a case value is a file by the rule: only ``path``/``url``/``type`` keys, exactly one of the first two."""
    return (isinstance(value, Mapping) and bool(value) and set(value) <= _KEYS
            and (("path" in value) != ("url" in value)) and all(isinstance(v, str) for v in value.values()))


def _sniff(data: bytes, name: str) -> str:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _data_url(url: str, where: str) -> tuple[str | None, bytes]:
    m = _DATA_URL.fullmatch(url)
    if m is None:
        raise InputError("a data: URL must read data:MIME;base64,DATA", where=where, hint=_HOW)
    try:
        return m.group(1), base64.b64decode(m.group(3), validate=True)
    except (binascii.Error, ValueError):
        raise InputError("the data: URL's base64 is not valid", where=where, hint="encode the file with base64") from None


def parse_ref(value: Any, *, where: str, base: Path | None = None) -> FileRef:
    """A checked :class:`FileRef`: the file exists, is a regular file within the size limit, its type is known.

    A relative ``path`` is taken from ``base`` (the current directory when
    None) and made absolute. Refusals are one :class:`InputError` naming
    ``where`` (the case and field).
    """
    if not is_file_ref(value):
        raise InputError("a file must be an object with exactly one of 'path' or 'url' (and optionally 'type')",
                         where=where, hint=_HOW)
    declared = value.get("type")
    if "path" in value:
        p = Path(os.path.expanduser(value["path"]))
        p = (base or Path.cwd()) / p if not p.is_absolute() else p
        data = read_bytes(p, what=f"the file {p}", max_bytes=MAX_ATTACHMENT_BYTES, fail=failing(InputError, where))
        if not data:
            raise InputError(f"the file {p} is empty", where=where, hint="give a file with content")
        digest = hashlib.sha256(data).hexdigest()
        if value.get("sha256") not in (None, digest):
            raise InputError(f"the file {p} has changed since its sha256 was taken", where=where,
                             hint="start a new run for the new file, or put the old file back")
        return FileRef(path=str(p.resolve()), url=None, type=declared or _sniff(data, p.name), sha256=digest)
    url = value["url"]
    if url.startswith("data:"):
        mime, data = _data_url(url, where)
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise InputError(f"the data: URL holds more than {MAX_ATTACHMENT_BYTES >> 20} MiB", where=where,
                             hint="give a smaller file")
        return FileRef(path=None, url=url, type=declared or mime or _sniff(data, ""))
    if not re.match(r"https?://", url):
        raise InputError(f"a file URL must be http(s):// or data:, not {url[:40]!r}", where=where, hint=_HOW)
    return FileRef(path=None, url=url, type=declared or mimetypes.guess_type(url)[0] or "application/octet-stream")


def shorthand(value: str) -> Any:
    """An ``--input KEY=VALUE`` value: ``@FILE`` is the file ``{"path": FILE}``, ``@@x`` the text ``@x``."""
    if value.startswith("@@"):
        return value[1:]
    if value.startswith("@"):
        return {"path": value[1:]}
    return value


def resolve_case(case: Any, *, where: str, base: Path | None = None) -> Any:
    """A case with every file field (or list of files) checked and normalised (absolute path, MIME type).

    Called on every case before a run starts, so a missing or oversized file
    is refused (exit 2) before any model is paid for.
    """
    if not isinstance(case, Mapping):
        return case
    out: dict[str, Any] = {}
    for key, value in case.items():
        at = f"{where}, field '{key}'"
        if _meant_as_file(value):
            out[key] = parse_ref(value, where=at, base=base).to_json()
        elif isinstance(value, list) and value and all(_meant_as_file(v) for v in value):
            out[key] = [parse_ref(v, where=f"{at}[{i}]", base=base).to_json() for i, v in enumerate(value)]
        else:
            out[key] = value
    return out


def read_file(ref: Any, *, where: str = "a file input") -> bytes:
    """The bytes of a file reference (a local path or a data: URL; an http(s) URL is not fetched)."""
    r = ref if isinstance(ref, FileRef) else parse_ref(ref, where=where)
    if r.path is not None:
        data = read_bytes(r.path, what=f"the file {r.path}", max_bytes=MAX_ATTACHMENT_BYTES,
                          fail=failing(InputError, where))
        if r.sha256 is not None and hashlib.sha256(data).hexdigest() != r.sha256:
            raise InputError(f"the file {r.path} has changed since the run started", where=where,
                             hint="start a new run for the new file, or put the old file back")
        return data
    if r.url and r.url.startswith("data:"):
        return _data_url(r.url, where)[1]
    raise InputError(f"{r.url} is a remote URL, which petriflow does not fetch", where=where,
                     hint="download the file and give its path")


def part_kind(part: Mapping[str, Any]) -> str:
    """What a content part carries, in the words of a model's ``accepts``: ``text``, ``image`` or ``file``."""
    return {"image_url": "image", "file": "file"}.get(str(part.get("type")), "text")


def content_part(ref: Any, *, where: str = "a file input") -> dict[str, Any]:
    """The OpenAI content part that carries a file: ``image_url`` for an image, ``file`` for anything else."""
    r = ref if isinstance(ref, FileRef) else parse_ref(ref, where=where)
    if r.type.startswith("image/"):
        url = r.url if r.url else f"data:{r.type};base64,{base64.b64encode(read_file(r, where=where)).decode()}"
        return {"type": "image_url", "image_url": {"url": url}}
    if r.url and not r.url.startswith("data:"):
        raise InputError(f"only an image can be sent by URL; {r.url} is {r.type}", where=where,
                         hint="download the file and give its path")
    data = f"data:{r.type};base64,{base64.b64encode(read_file(r, where=where)).decode()}"
    return {"type": "file", "file": {"filename": r.name, "file_data": data}}
