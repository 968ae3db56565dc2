"""Test images made on the fly with Pillow."""

from __future__ import annotations

import io
import os

from PIL import Image, ImageDraw


def png(width: int = 64, height: int = 48, color: tuple[int, int, int] = (20, 90, 200)) -> bytes:
    """A plain background with a contrasting square in the middle (something to cut out)."""
    img = Image.new("RGB", (width, height), color)
    ImageDraw.Draw(img).rectangle((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(250, 220, 30))
    return encode(img, "PNG")


def jpeg(width: int = 64, height: int = 48) -> bytes:
    return encode(Image.open(io.BytesIO(png(width, height))).convert("RGB"), "JPEG")


def noise_png(width: int, height: int) -> bytes:
    """Incompressible pixels: the PNG is about width*height*3 bytes."""
    return encode(Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)), "PNG")


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def scene(width: int = 160, height: int = 120) -> bytes:
    """A flat background around a few shapes: a cutout shows clearly in a screenshot."""
    img = Image.new("RGB", (width, height), (70, 140, 210))
    draw = ImageDraw.Draw(img)
    draw.ellipse((width * 0.55, height * 0.12, width * 0.85, height * 0.52), fill=(250, 200, 40))
    draw.rectangle((width * 0.15, height * 0.5, width * 0.5, height * 0.88), fill=(200, 70, 60))
    draw.polygon([(width * 0.1, height * 0.5), (width * 0.325, height * 0.22), (width * 0.55, height * 0.5)],
                 fill=(120, 50, 40))
    return encode(img, "PNG")
