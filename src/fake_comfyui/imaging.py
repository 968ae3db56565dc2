"""Pillow image operations behind the fake nodes (pure functions, safe to run in a thread)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps, ImageStat, UnidentifiedImageError

from .errors import NodeExecutionError

RESAMPLE = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
FLOOD_SIDE = 160


def decode(data: bytes) -> Image.Image:
    """Open image bytes fully; unknown data fails like PIL does inside ComfyUI."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
            return image
    except UnidentifiedImageError as exc:
        raise NodeExecutionError(str(exc), "PIL.UnidentifiedImageError") from exc
    except (OSError, ValueError) as exc:
        raise NodeExecutionError(str(exc), type(exc).__name__) from exc


def image_and_mask(image: Image.Image) -> tuple[Image.Image, Image.Image]:
    """IMAGE (RGB) and MASK like ComfyUI's loaders: mask = inverted alpha, zeros without alpha."""
    has_alpha = "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        mask = ImageOps.invert(rgba.getchannel("A"))
        return rgba.convert("RGB"), mask
    return image.convert("RGB"), Image.new("L", image.size, 0)


def scale_by(image: Image.Image, method: str, factor: float) -> Image.Image:
    width = max(1, round(image.width * factor))
    height = max(1, round(image.height * factor))
    return image.resize((width, height), RESAMPLE[method])


def invert(image: Image.Image) -> Image.Image:
    """Invert colour channels; an alpha channel is kept."""
    if image.mode == "RGBA":
        rgb = ImageOps.invert(image.convert("RGB"))
        rgb.putalpha(image.getchannel("A"))
        return rgb
    return ImageOps.invert(image.convert("RGB"))


def mask_to_image(mask: Image.Image) -> Image.Image:
    return mask.convert("L").convert("RGB")


def tile_count(width: int, height: int, tile: int) -> int:
    return max(1, math.ceil(width / tile) * math.ceil(height / tile))


def upscale_tiled(
    image: Image.Image, factor: int, tile: int, on_tile: Callable[[int, int], None], pad: int = 8,
) -> Image.Image:
    """Lanczos upscale tile by tile (with a small overlap); `on_tile(done, total)` after each tile."""
    width, height = image.size
    total = tile_count(width, height, tile)
    out = Image.new(image.mode, (width * factor, height * factor))
    done = 0
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            right, bottom = min(left + tile, width), min(top + tile, height)
            box = (max(0, left - pad), max(0, top - pad), min(width, right + pad), min(height, bottom + pad))
            part = image.crop(box)
            part = part.resize((part.width * factor, part.height * factor), Image.Resampling.LANCZOS)
            inner = ((left - box[0]) * factor, (top - box[1]) * factor)
            part = part.crop((inner[0], inner[1], inner[0] + (right - left) * factor,
                              inner[1] + (bottom - top) * factor))
            out.paste(part, (left * factor, top * factor))
            done += 1
            on_tile(done, total)
    return out


def _border_colour(rgb: Image.Image) -> tuple[int, int, int]:
    """Median colour of the one-pixel frame around the image."""
    width, height = rgb.size
    strips = [rgb.crop((0, 0, width, 1)), rgb.crop((0, height - 1, width, height)),
              rgb.crop((0, 0, 1, height)).rotate(90, expand=True),
              rgb.crop((width - 1, 0, width, height)).rotate(90, expand=True)]
    frame = Image.new("RGB", (sum(s.width for s in strips), 1))
    offset = 0
    for strip in strips:
        frame.paste(strip, (offset, 0))
        offset += strip.width
    red, green, blue = (int(v) for v in ImageStat.Stat(frame).median)
    return red, green, blue


def _enclosed(subject: Image.Image) -> Image.Image:
    """255 where background-coloured pixels cannot reach the border (holes inside the subject)."""
    scale = min(1.0, FLOOD_SIDE / max(subject.size))
    small_size = (max(1, round(subject.width * scale)), max(1, round(subject.height * scale)))
    blocked = subject.resize(small_size, Image.Resampling.BOX).point(lambda v: 255 if v > 0 else 0)
    width, height = blocked.size
    border = [(x, y) for x in range(width) for y in (0, height - 1)]
    border += [(x, y) for y in range(height) for x in (0, width - 1)]
    for point in border:
        if blocked.getpixel(point) == 0:
            ImageDraw.floodfill(blocked, point, 128, thresh=0)
    holes = blocked.point(lambda v: 255 if v == 0 else 0)
    return holes.resize(subject.size, Image.Resampling.NEAREST)


def remove_background(image: Image.Image, threshold: int = 48) -> tuple[Image.Image, Image.Image]:
    """CPU stand-in for a matting model: RGBA with transparent background, and the alpha as MASK.

    The background colour is the median of the border pixels; a pixel belongs to the subject when
    its largest channel distance to that colour exceeds `threshold`, or when it is enclosed by the
    subject (not reachable from the border through background pixels).
    """
    rgb = image.convert("RGB")
    background = Image.new("RGB", rgb.size, _border_colour(rgb))
    red, green, blue = ImageChops.difference(rgb, background).split()
    distance = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    subject = distance.point(lambda v: 255 if v > threshold else 0)
    if min(subject.size) >= 3:
        subject = subject.filter(ImageFilter.MedianFilter(3))
    alpha = ImageChops.lighter(subject, _enclosed(subject))
    cutout = rgb.copy()
    cutout.putalpha(alpha)
    return cutout, alpha
