"""What counts as an output in a /history entry, and which byte range a Range header selects."""

from __future__ import annotations

import pytest

from comfy_gateway.api.ranges import byte_range
from comfy_gateway.comfyui.models import ImageRef
from comfy_gateway.comfyui.outputs import output_items
from comfy_gateway.errors import RangeNotSatisfiable
from comfy_gateway.jobs.outputs import content_type_of


def test_files_and_text_of_every_node_in_order() -> None:
    entry = {"outputs": {
        "9": {"images": [{"filename": "anim_00001_.webp", "subfolder": "", "type": "output"}], "animated": [True]},
        "7": {"gifs": [{"filename": "clip_00001_.mp4", "subfolder": "v", "type": "output", "format": "video/h264-mp4",
                        "frame_rate": 8.0, "workflow": "clip_00001_.png", "fullpath": "/x/clip_00001_.mp4"}]},
        "8": {"text": ["first", "second"]},
        "4": {"audio": [{"filename": "tone_00001_.flac", "subfolder": "audio", "type": "temp"}]},
        "5": {"images": []}, "6": "not a payload", "3": {"text": [42]},
    }}
    items = output_items(entry)
    assert [(i.node_id, i.kind, i.position) for i in items] == [
        ("9", "images", 0), ("7", "gifs", 0), ("8", "text", 0), ("8", "text", 1), ("4", "audio", 0)]
    assert items[1].ref == ImageRef("clip_00001_.mp4", "v", "output")
    assert items[3].text == "second" and items[3].ref is None
    assert items[4].ref == ImageRef("tone_00001_.flac", "audio", "temp")
    assert output_items({}) == [] and output_items({"outputs": None}) == []


@pytest.mark.parametrize(("name", "expected"), [
    ("a.png", "image/png"), ("a.WEBP", "image/webp"), ("a.gif", "image/gif"), ("a.mp4", "video/mp4"),
    ("a.webm", "video/webm"), ("a.flac", "audio/flac"), ("a.wav", "audio/x-wav"),
    ("a.txt", "text/plain; charset=utf-8"),
    ("noext", "application/octet-stream"), ("a.unknown-ext", "application/octet-stream"),
])
def test_content_type_from_the_file_name(name: str, expected: str) -> None:
    assert content_type_of(name) == expected


@pytest.mark.parametrize(("header", "expected"), [
    (None, None), ("bytes=0-0", (0, 1)), ("bytes=10-19", (10, 20)), ("bytes=90-", (90, 100)),
    ("bytes=-5", (95, 100)), ("bytes=-500", (0, 100)), ("bytes=95-500", (95, 100)), ("bytes = 1-2", (1, 3)),
])
def test_single_ranges(header: str | None, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=5-4", "bytes=-0", "bytes=-", "bytes=0-1,3-4", "lines=0-1",
                                    "bytes=a-b", "bytes=+1-2", ""])
def test_bad_ranges_are_not_satisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        byte_range(header, 100)
    assert info.value.size == 100 and info.value.status_code == 416
