"""Output nodes beyond single images: batches, animations, video, audio and text.

Each reports its files in `executed.output` (and so in /history) under the key the real node uses:
    RepeatImageBatch   (core)  an IMAGE batch: SaveImage then writes one file per image
    ImageBatch         (core)  two IMAGE values joined into one batch
    SaveAnimatedWEBP   (core)  {"images": [ref], "animated": [true]}
    VHS_VideoCombine   (VideoHelperSuite) {"gifs": [{..., "format", "frame_rate", "workflow", "fullpath"}]}
    SaveAudio          (core)  {"audio": [ref]}; a WAV file here (the real node writes FLAC)
    PreviewAny         (core)  {"text": ["..."]}: text inline, no file
    FakeSineAudio      (this fake only) an AUDIO value of any length, rendered when it is saved

An IMAGE is one Pillow image or, after RepeatImageBatch, a list of them (a batch).
"""

from __future__ import annotations

import math
import struct
import wave
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .catalog import InputSpec, NodeContext, NodeOutput, NodeSpec
from .errors import NodeExecutionError

VIDEO_FORMATS = ("image/gif", "image/webp", "video/h264-mp4")
VHS_MODULE = "custom_nodes.ComfyUI-VideoHelperSuite"


@dataclass(frozen=True)
class SineAudio:
    """What FakeSineAudio hands to SaveAudio: a tone, not yet rendered (it may be hundreds of MB)."""

    seconds: float
    sample_rate: int
    frequency: float


def frames_of(value: Any) -> list[Image.Image]:
    """The images of an IMAGE value: a batch as it is, a single image as a batch of one."""
    return list(value) if isinstance(value, list) else [value]


def _repeat_batch(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    frames = frames_of(inputs["image"])
    return NodeOutput(([frame.copy() for _ in range(int(inputs["amount"])) for frame in frames],))


def _join_batches(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    return NodeOutput(([*frames_of(inputs["image1"]), *frames_of(inputs["image2"])],))


def _save_animated_webp(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    frames = [frame.convert("RGBA") for frame in frames_of(inputs["images"])]
    path, stored = ctx.next_output_path("output", str(inputs["filename_prefix"]), "webp")
    frames[0].save(path, format="WEBP", save_all=True, append_images=frames[1:], lossless=bool(inputs["lossless"]),
                   quality=int(inputs["quality"]), duration=round(1000 / float(inputs["fps"])), loop=0)
    return NodeOutput((), {"images": [stored.as_image_ref()], "animated": [True]})


def _write_mp4(path: Path, frames: list[Image.Image], fps: float) -> None:
    try:
        import imageio_ffmpeg  # type: ignore[import-untyped]
    except ImportError as exc:  # an optional dependency of the fake (the `dev` extra)
        raise NodeExecutionError("imageio-ffmpeg is not installed", "ModuleNotFoundError") from exc
    width, height = frames[0].size
    size = (width - width % 2, height - height % 2)  # yuv420p needs even sides
    writer = imageio_ffmpeg.write_frames(str(path), size, fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=1, output_params=["-loglevel", "error"])
    writer.send(None)
    try:
        for frame in frames:
            writer.send(frame.convert("RGB").crop((0, 0, *size)).tobytes())
    finally:
        writer.close()


def _video_combine(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    frames = frames_of(inputs["images"])
    if inputs["pingpong"]:
        frames = frames + frames[-2:0:-1]
    fmt, fps = str(inputs["format"]), float(inputs["frame_rate"])
    folder = "output" if inputs["save_output"] else "temp"
    prefix = str(inputs["filename_prefix"])
    first, first_ref = ctx.next_output_path(folder, prefix, "png")
    frames[0].save(first, format="PNG")  # VHS keeps the workflow in a PNG of the first frame
    ext = fmt.partition("/")[2]
    path, stored = ctx.next_output_path(folder, prefix, "mp4" if ext == "h264-mp4" else ext)
    if ext == "h264-mp4":
        _write_mp4(path, frames, fps)
    else:
        frames[0].save(path, format=ext.upper(), save_all=True, append_images=frames[1:],
                       duration=round(1000 / fps), loop=int(inputs["loop_count"]))
    preview = {**stored.as_image_ref(), "format": fmt, "frame_rate": fps, "workflow": first_ref.name,
               "fullpath": str(path)}
    return NodeOutput(((True, [str(first), str(path)]),), {"gifs": [preview]})


def _sine_audio(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    return NodeOutput((SineAudio(float(inputs["seconds"]), int(inputs["sample_rate"]),
                                 float(inputs["frequency"])),))


def _write_wav(path: Path, audio: SineAudio, ctx: NodeContext) -> None:
    """Second by second, so a long tone never sits in memory whole."""
    rate = audio.sample_rate
    second = struct.pack(f"<{rate}h", *(round(12000 * math.sin(2 * math.pi * audio.frequency * i / rate))
                                        for i in range(rate)))
    whole, rest = divmod(round(audio.seconds * rate), rate)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        for _ in range(whole):
            ctx.check_interrupted()
            out.writeframesraw(second)
        out.writeframesraw(second[: rest * 2])


def _save_audio(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    path, stored = ctx.next_output_path("output", str(inputs["filename_prefix"]), "wav")
    _write_wav(path, inputs["audio"], ctx)
    return NodeOutput((), {"audio": [stored.as_image_ref()]})


def _preview_any(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    return NodeOutput((), {"text": [str(inputs["source"])]})


def _prefix(default: str) -> InputSpec:
    return InputSpec("filename_prefix", "STRING", {"default": default})


def media_specs() -> list[NodeSpec]:
    images_in = InputSpec("images", "IMAGE")
    boolean = {"default": False}
    return [
        NodeSpec("RepeatImageBatch", "RepeatImageBatch", "image/batch",
                 (InputSpec("image", "IMAGE"), InputSpec("amount", "INT", {"default": 1, "min": 1, "max": 4096})),
                 ("IMAGE",), _repeat_batch),
        NodeSpec("ImageBatch", "Batch Images", "image", (InputSpec("image1", "IMAGE"), InputSpec("image2", "IMAGE")),
                 ("IMAGE",), _join_batches),
        NodeSpec("SaveAnimatedWEBP", "SaveAnimatedWEBP", "image/animation",
                 (images_in, _prefix("ComfyUI"),
                  InputSpec("fps", "FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0}),
                  InputSpec("lossless", "BOOLEAN", boolean),
                  InputSpec("quality", "INT", {"default": 80, "min": 0, "max": 100}),
                  InputSpec("method", "COMBO", choices=("default", "fastest", "slowest"))),
                 (), _save_animated_webp, output_node=True),
        NodeSpec("VHS_VideoCombine", "Video Combine 🎥🅥🅗🅢", "Video Helper Suite 🎥🅥🅗🅢",
                 (images_in, InputSpec("frame_rate", "FLOAT", {"default": 8.0, "min": 1.0}),
                  InputSpec("loop_count", "INT", {"default": 0, "min": 0, "max": 100}),
                  _prefix("AnimateDiff"), InputSpec("format", "COMBO", choices=VIDEO_FORMATS),
                  InputSpec("pingpong", "BOOLEAN", boolean), InputSpec("save_output", "BOOLEAN", {"default": True})),
                 ("VHS_FILENAMES",), _video_combine, output_node=True, python_module=VHS_MODULE),
        NodeSpec("FakeSineAudio", "Sine tone (fake)", "testing",
                 (InputSpec("seconds", "FLOAT", {"default": 1.0, "min": 0.0, "max": 100_000.0}),
                  InputSpec("sample_rate", "INT", {"default": 44100, "min": 8000, "max": 192_000}),
                  InputSpec("frequency", "FLOAT", {"default": 440.0, "min": 1.0, "max": 20_000.0})),
                 ("AUDIO",), _sine_audio, python_module="custom_nodes.fake-test-nodes"),
        NodeSpec("SaveAudio", "Save Audio (FLAC)", "audio", (InputSpec("audio", "AUDIO"), _prefix("audio/ComfyUI")),
                 (), _save_audio, output_node=True, python_module="comfy_extras.nodes_audio"),
        NodeSpec("PreviewAny", "Preview Any", "utils", (InputSpec("source", "STRING", {"multiline": True}),),
                 (), _preview_any, output_node=True, python_module="comfy_extras.nodes_preview_any"),
    ]
