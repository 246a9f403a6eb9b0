"""Drawing a prediction on a copy of its image (``animesion predict --annotate``, chapter 8)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from animesion_lib.atomic import atomic_path
from animesion_lib.prediction import load_image

LINE_HEIGHT = 12  # pixels per line of PIL's default bitmap font, spacing included


def annotate_image(source: str | Path | Image.Image, destination: str | Path, lines: list[str]) -> Path:
    """Save a copy of ``source`` with ``lines`` written on a dark band at its top (PIL, default font)."""
    image = source.convert("RGB") if isinstance(source, Image.Image) else load_image(source)
    font = ImageFont.load_default()
    band = LINE_HEIGHT * len(lines) + 6
    # as wide as the longest line: a small face crop must not cut a character's name off
    text_width = max((int(font.getlength(line)) + 6 for line in lines), default=0)
    canvas = Image.new("RGB", (max(image.width, text_width), image.height + band), (0, 0, 0))
    canvas.paste(image, (0, band))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((3, 3 + i * LINE_HEIGHT), line, fill=(255, 255, 255), font=font)
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(destination.suffix.lower(), "PNG")
    with atomic_path(destination) as tmp:  # an interrupted run leaves no half-written image
        canvas.save(tmp, format=fmt)
    return destination
