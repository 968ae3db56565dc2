"""Image admission and output conversion."""

from __future__ import annotations

import io
import zlib

import pytest
from PIL import Image, PngImagePlugin

from comfy_gateway.errors import (
    InvalidInput,
    PayloadTooLarge,
    ResultTooLarge,
    UnsupportedMediaType,
    UpstreamUnavailable,
)
from comfy_gateway.images import (
    convert_image,
    image_size,
    inspect_image,
    result_size,
    strip_png_text,
    stripped_png_size,
)
from fake_comfyui.lies import huge_png
from support.images import decode, jpeg, png


def png_with_text(text: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", text)
    info.add_itxt("workflow", text)
    buf = io.BytesIO()
    Image.new("RGBA", (8, 6), (1, 2, 3, 128)).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def test_strip_png_text_drops_metadata_and_keeps_pixels():
    original = png_with_text("x" * 5000)
    stripped = strip_png_text(original)
    assert len(stripped) < len(original) - 4000
    img = decode(stripped)
    assert img.text == {} and img.size == (8, 6) and img.getpixel((0, 0)) == (1, 2, 3, 128)


def test_strip_png_text_leaves_other_bytes_alone():
    assert strip_png_text(b"not a png") == b"not a png"
    truncated = png_with_text("abc")[:-20]
    assert strip_png_text(truncated) == truncated


def test_the_stripped_size_is_known_without_stripping():
    for data in (png_with_text("x" * 5000), png_with_text(""), b"not a png", png_with_text("abc")[:-20]):
        assert stripped_png_size(data) == len(strip_png_text(data))
    assert stripped_png_size(png_with_text("x" * 5000)) < 1000


def test_inspect_accepts_png_jpeg_and_reports_size():
    assert inspect_image(png(30, 20), 10_000).as_meta()["width"] == 30
    assert inspect_image(jpeg(30, 20), 10_000).mime == "image/jpeg"


@pytest.mark.parametrize(("data", "error"), [
    (b"", InvalidInput),
    (b"hello, this is text", UnsupportedMediaType),
    (png(40, 40)[:60], InvalidInput),
])
def test_inspect_refuses_bad_files(data, error):
    with pytest.raises(error):
        inspect_image(data, 1_000_000)


def test_inspect_refuses_gif_as_unsupported():
    buf = io.BytesIO()
    Image.new("P", (4, 4)).save(buf, format="GIF")
    with pytest.raises(UnsupportedMediaType, match="GIF"):
        inspect_image(buf.getvalue(), 1000)


def test_pixel_cap_stops_a_bomb_before_decoding():
    # A valid PNG header declaring 100000 x 100000 pixels, with almost no data behind it.
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")
    header = (100_000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    bomb = b"\x89PNG\r\n\x1a\n" + body
    with pytest.raises(PayloadTooLarge):
        inspect_image(bomb, 40_000_000)


def test_convert_to_jpeg_flattens_alpha_and_webp_keeps_it():
    rgba = io.BytesIO()
    Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(rgba, format="PNG")
    as_jpeg = decode(convert_image(rgba.getvalue(), "jpeg"))
    assert as_jpeg.format == "JPEG" and as_jpeg.mode == "RGB"
    assert as_jpeg.getpixel((5, 5))[1] > 240  # transparent became white, not black
    as_webp = decode(convert_image(rgba.getvalue(), "webp"))
    assert as_webp.format == "WEBP" and as_webp.mode == "RGBA"


def test_result_size_reads_the_header_and_refuses_past_max_result_pixels() -> None:
    assert result_size(png(30, 20), max_pixels=600) == (30, 20)
    with pytest.raises(ResultTooLarge, match="30x20 = 600 pixels, over MAX_RESULT_PIXELS"):
        result_size(png(30, 20), max_pixels=599)
    with pytest.raises(ResultTooLarge, match="12000x12000"):  # over Pillow's warning size: never decoded
        result_size(huge_png(), max_pixels=40_000_000)
    with pytest.raises(UpstreamUnavailable, match="not a readable image"):
        result_size(b"<html>", max_pixels=600)


def test_image_size_reads_a_png_from_its_header_and_other_formats_with_pillow() -> None:
    assert image_size(png(30, 20)) == (30, 20)
    assert image_size(huge_png()) == (12000, 12000)  # the header only: no pass over the pixels
    assert image_size(jpeg(31, 17)) == (31, 17)
    webp = convert_image(png(9, 7), "webp")
    assert image_size(webp) == (9, 7)
