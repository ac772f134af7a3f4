"""The content moderation workflow's own steps: ingest, OCR, the decision record, the verdicts, the audit log.

Every function is a python step of ``content_moderation.yaml`` (``tools:function``,
found next to the workflow file whatever the current directory). They are small on
purpose: what decides a post is the route conditions in the YAML, over the record
:func:`decide` builds from the classifiers' scores and the keywords it finds.

The audit log is a SQLite file, ``$MODERATION_AUDIT_DB`` or
``out/content_moderation_audit.sqlite`` (relative to the current directory): one row
per case, written by :func:`audit` on every ordinary path and by :func:`audit_failure`,
the workflow's ``on_failure`` handler, when a step fails for good.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

BLOCKLIST = ("free money", "click here", "wire transfer", "kill yourself", "buy followers", "crypto giveaway")
"""Phrases that reject a post whatever the classifiers say (matched in the text and in the image's text)."""

_OCR: Any = None
_OCR_LOCK = threading.Lock()


def _audit_path() -> Path:
    return Path(os.environ.get("MODERATION_AUDIT_DB", "out/content_moderation_audit.sqlite"))


def ingest(inputs: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    """The post as the branches read it; a post with nothing to moderate, or an image that is no image, fails.

    Only the image's header is read here (Pillow's lazy open): a file that is
    not an image at all fails the case at once (its ``on_failure`` audits it),
    while a truncated image gets as far as OCR, whose fallback says it is unreadable.
    """
    text = str(case.get("text") or "").strip()
    image = case.get("image")
    if not text and not image:
        raise ValueError("the post has neither text nor an image")
    if image is not None:
        from PIL import Image, UnidentifiedImageError

        path = image.get("path") if isinstance(image, dict) else None
        if not path:
            raise ValueError("the image must be a local file ({'path': ...} or --input image=@FILE)")
        try:
            with Image.open(path) as im:
                size = im.size
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"the image {Path(path).name} is not an image: {exc}") from None
        return {"id": case.get("id"), "text": text, "image": path, "size": list(size)}
    return {"id": case.get("id"), "text": text, "image": None, "size": None}


def _engine() -> Any:
    """One RapidOCR engine per process (its ONNX models ship in the rapidocr-onnxruntime wheel)."""
    global _OCR
    with _OCR_LOCK:
        if _OCR is None:
            from rapidocr_onnxruntime import RapidOCR

            # 'max' 960: never upscale a small picture (the default 'min' 736 does, and costs seconds)
            _OCR = RapidOCR(det_limit_type="max", det_limit_side_len=960, intra_op_num_threads=1,
                            inter_op_num_threads=1)
        return _OCR


def ocr(inputs: dict[str, Any]) -> dict[str, Any]:
    """The words in the post's image, with the recogniser's mean confidence; no image reads as no text.

    A picture that cannot be decoded (a truncated file) raises, which the
    workflow's fallback (:func:`ocr_unreadable`) turns into a post for a human.
    """
    post = inputs["ingest"]
    if not post.get("image"):
        return {"text": "", "confidence": 1.0, "lines": 0, "unreadable": False}
    import numpy as np
    from PIL import Image

    with Image.open(post["image"]) as im:
        pixels = np.asarray(im.convert("RGB"))  # decodes the whole file: a truncated one raises OSError here
    result, _ = _engine()(pixels[:, :, ::-1], use_cls=False)  # RapidOCR reads BGR, as OpenCV does
    lines = [(str(r[1]), float(r[2])) for r in result or []]
    text = " ".join(t for t, _ in lines)
    conf = sum(c for _, c in lines) / len(lines) if lines else 0.0
    return {"text": text, "confidence": round(conf, 4), "lines": len(lines), "unreadable": False}


def ocr_unreadable(inputs: dict[str, Any]) -> dict[str, Any]:
    """The OCR step's fallback: the image could not be read, so nothing is known of its words."""
    return {"text": "", "confidence": 0.0, "lines": 0, "unreadable": True}


def _p(out: Any, bad: str) -> tuple[float, float]:
    """``(probability the label is `bad`, the classifier's confidence)`` from a classify output.

    A classify output is ``{"label", "score"}`` (the score is the winning
    label's probability); a bare label (older petriflow) counts as certain.
    """
    if isinstance(out, dict):
        label, score = str(out.get("label")), float(out.get("score", 1.0))
    else:
        label, score = str(out), 1.0
    return (score if label == bad else 1.0 - score), score


def keywords(text: str) -> list[str]:
    """The blocklisted phrases in ``text`` (case and spacing ignored)."""
    flat = " " + re.sub(r"[^a-z0-9]+", " ", text.lower()) + " "
    return [k for k in BLOCKLIST if f" {k} " in flat]


def decide(inputs: dict[str, Any]) -> dict[str, Any]:
    """The record the route conditions read: risk, confidence, keywords, and where each number came from.

    ``risk`` is the highest probability of harm any classifier gives (text
    toxicity, spam, the image's words' toxicity when it has words);
    ``confidence`` is the lowest confidence among them, and the OCR's own
    confidence when the image was read (0 when it could not be).
    """
    tox, tox_c = _p(inputs["toxicity"], "toxic")
    spam, spam_c = _p(inputs["spam"], "spam")
    image, post = inputs["ocr"], inputs["ingest"]
    risks, confs = [tox, spam], [tox_c, spam_c]
    img_tox = None
    if image.get("text"):
        img_tox, img_c = _p(inputs["image_toxicity"], "toxic")
        risks.append(img_tox)
        confs += [img_c, float(image.get("confidence", 0.0))]
    if image.get("unreadable"):
        confs.append(0.0)
    found = keywords(str(post.get("text", "")) + " " + str(image.get("text", "")))
    return {"id": post.get("id"), "risk": round(max(risks), 4), "confidence": round(min(confs), 4),
            "keywords": found, "toxicity": round(tox, 4), "spam": round(spam, 4),
            "image_toxicity": None if img_tox is None else round(img_tox, 4),
            "image_text": image.get("text", ""), "unreadable": bool(image.get("unreadable"))}


def verdict(inputs: dict[str, Any], verdict: str = "approved") -> dict[str, Any]:
    """An automatic verdict (``approve`` / ``reject``) on the decision record."""
    return {**inputs["decide"], "verdict": verdict, "by": "rules"}


def hold(inputs: dict[str, Any]) -> dict[str, Any]:
    """A post queued for a person: the decision record and why it was not decided automatically."""
    d = inputs["decide"]
    why = ("the image could not be read" if d["unreadable"] else
           f"low confidence ({d['confidence']})" if d["confidence"] < 0.6 else f"uncertain risk ({d['risk']})")
    return {**d, "why": why}


def reviewed(inputs: dict[str, Any]) -> dict[str, Any]:
    """A person's answer (approve / reject, any case, or the words' first letter) on the held record."""
    answer = str(inputs["review"]).strip().lower()
    if answer[:1] not in ("a", "r"):
        raise ValueError(f"the review answer {inputs['review']!r} is neither approve nor reject")
    return {**inputs["hold"], "verdict": "approved" if answer[0] == "a" else "rejected", "by": "human"}


def _write(case: dict[str, Any], verdict: str, by: str, record: dict[str, Any], error: str | None) -> dict[str, Any]:
    path = _audit_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"post": str(case.get("id", "")), "verdict": verdict, "by": by, "record": record, "error": error}
    with sqlite3.connect(path, timeout=30) as db:
        db.execute("CREATE TABLE IF NOT EXISTS audit (n INTEGER PRIMARY KEY, post TEXT NOT NULL, verdict TEXT NOT NULL,"
                   " by TEXT NOT NULL, record TEXT NOT NULL, error TEXT, at REAL NOT NULL)")
        cur = db.execute("INSERT INTO audit (post, verdict, by, record, error, at) VALUES (?, ?, ?, ?, ?, ?)",
                         (row["post"], verdict, by, json.dumps(record, sort_keys=True), error, time.time()))
        row["row"] = cur.lastrowid
    return row


def audit(inputs: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    """One audit row for the verdict of whichever path ran (approve, reject, or a person's review)."""
    record = inputs["after_any"]  # the verdict of the branch that ran (the XOR-join's output)
    return _write(case, record["verdict"], record["by"], record, None)


def audit_failure(inputs: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    """The ``on_failure`` handler: a step failed for good, and the post still gets its audit row, with why."""
    failure = inputs.get("failure") or {}
    return _write(case, "failed", "petriflow", {"step": failure.get("step")},
                  failure.get("error") or "a step failed (see `petriflow runs show`)")
