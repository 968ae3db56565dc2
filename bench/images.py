"""The images the scenarios upload, made once per run (deterministic, no files needed)."""

from __future__ import annotations

import io
import random
from functools import cache

from PIL import Image, ImageDraw


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@cache
def picture(side: int = 256) -> bytes:
    """A small, well-compressing picture: a disc on a flat background."""
    img = Image.new("RGB", (side, side), (40, 120, 200))
    ImageDraw.Draw(img).ellipse((side // 4, side // 4, side * 3 // 4, side * 3 // 4), fill=(240, 200, 40))
    return _png(img)


@cache
def noise(side: int) -> bytes:
    """Random RGB pixels: PNG cannot compress them, so the file is about 3 bytes per pixel."""
    rng = random.Random(side)
    return _png(Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)))


def noise_of_size(target_bytes: int) -> bytes:
    """A noise PNG of about `target_bytes` (within a few per cent)."""
    side = int((target_bytes / 3) ** 0.5)
    return noise(side)
