"""Renders the sample images of posts.jsonl (run it from anywhere; it writes next to itself).

The pictures are made here, with Pillow's own font, so the sample data is the
project's own: signs with words on them for the OCR step, a truncated PNG
(its header is fine, its pixels are cut off) and a file that only pretends to
be a PNG. ``python3 models/content_moderation/data/make_images.py``
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
SIGNS = {
    "sign_welcome.png": ("Welcome to the garden club", "#f4f1e8", "#234"),
    "sign_spam.png": ("FREE MONEY click here", "#ffe14d", "#b00"),
    "sign_insult.png": ("you are stupid and worthless", "#ffffff", "#000"),
}


def sign(text: str, background: str, ink: str) -> Image.Image:
    font = ImageFont.load_default(size=40)
    left, top, right, bottom = font.getbbox(text)
    im = Image.new("RGB", (right - left + 80, bottom - top + 80), background)
    ImageDraw.Draw(im).text((40 - left, 40 - top), text, fill=ink, font=font)
    return im


def main() -> None:
    for name, (text, bg, ink) in SIGNS.items():
        sign(text, bg, ink).save(HERE / name, optimize=True)
    buf = io.BytesIO()
    sign("this part is lost", "#ffffff", "#000").save(buf, "PNG")
    (HERE / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (HERE / "not_an_image.png").write_text("this file is text, whatever its name says\n")


if __name__ == "__main__":
    main()
