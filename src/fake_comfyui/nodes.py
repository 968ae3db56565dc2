"""The node classes this fake server knows, and what each one does (real Pillow work)."""

from __future__ import annotations

import base64
import binascii
import json
import random
import string
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from . import imaging
from .catalog import InputLookup, InputSpec, NodeCatalog, NodeContext, NodeOutput, NodeSpec
from .errors import NodeExecutionError
from .media_nodes import frames_of, media_specs

UPSCALE_MODELS = ("4x_NMKD-Siax_200k.pth", "4x_tiny_big.safetensors", "broken.pth")
BROKEN_MODEL = "broken.pth"
UPSCALE_TILE = 512
HIDDEN_PNG = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
SCALE_METHODS = tuple(imaging.RESAMPLE)


@dataclass(frozen=True)
class UpscaleModel:
    """What UpscaleModelLoader hands to ImageUpscaleWithModel."""

    name: str
    scale: int = 4
    tile: int = UPSCALE_TILE


def _load_base64(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    text = "".join(str(inputs["image"]).split())
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        message = str(exc)
        if not message.startswith("Invalid base64-encoded string"):
            message = f"Invalid base64-encoded string: {message}"
        raise NodeExecutionError(message, "binascii.Error") from exc
    return NodeOutput(imaging.image_and_mask(imaging.decode(data)))


def _load_image(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    name = str(inputs["image"])
    path = ctx.input_path(name)
    if path is None:
        raise NodeExecutionError(f"Invalid image file: {name}", "FileNotFoundError")
    return NodeOutput(imaging.image_and_mask(imaging.decode(path.read_bytes())))


def _validate_load_image(inputs: Mapping[str, Any], lookup: InputLookup) -> list[dict[str, Any]]:
    name = inputs.get("image")
    if isinstance(name, str) and lookup(name) is not None:
        return []
    return [{
        "type": "custom_validation_failed",
        "message": "Custom validation failed for node",
        "details": f"image - Invalid image file: {name}",
        "extra_info": {"input_name": "image"},
    }]


def _png_info(ctx: NodeContext) -> PngInfo:
    info = PngInfo()
    info.add_text("prompt", json.dumps(ctx.prompt))
    extra = ctx.extra_data.get("extra_pnginfo")
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            info.add_text(str(key), json.dumps(value))
    return info


def _write_png(images: Any, ctx: NodeContext, folder_type: str, prefix: str) -> NodeOutput:
    """One PNG per image of the batch, as ComfyUI's SaveImage does."""
    refs = []
    for image in frames_of(images):
        path, stored = ctx.next_output_path(folder_type, prefix)
        image.save(path, format="PNG", pnginfo=_png_info(ctx), compress_level=4)
        refs.append(stored.as_image_ref())
    return NodeOutput((), {"images": refs})


def _save_image(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    return _write_png(inputs["images"], ctx, "output", str(inputs["filename_prefix"]))


def _preview_image(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
    return _write_png(inputs["images"], ctx, "temp", f"ComfyUI_temp_{suffix}")


def _scale_by(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    return NodeOutput((imaging.scale_by(inputs["image"], inputs["upscale_method"], inputs["scale_by"]),))


def _invert(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    return NodeOutput((imaging.invert(inputs["image"]),))


def _mask_to_image(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    return NodeOutput((imaging.mask_to_image(inputs["mask"]),))


def _load_upscale_model(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    name = inputs["model_name"]
    if name == BROKEN_MODEL:
        raise NodeExecutionError(
            "Weights only load failed. In PyTorch 2.6, we changed the default value of the `weights_only` "
            "argument in `torch.load` from `False` to `True`. Please file an issue with the following "
            "so that we can make `weights_only=True` compatible with your use case: WeightsUnpickler "
            "error: Unsupported operand 103",
            "_pickle.UnpicklingError",
        )
    return NodeOutput((UpscaleModel(name),))


def _upscale_with_model(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    model: UpscaleModel = inputs["upscale_model"]
    image: Image.Image = inputs["image"]
    return NodeOutput((imaging.upscale_tiled(image, model.scale, model.tile, ctx.progress),))


def _remove_background(inputs: Mapping[str, Any], ctx: NodeContext) -> NodeOutput:
    ctx.check_interrupted()
    return NodeOutput(imaging.remove_background(inputs["image"]))


def build_catalog(without: Collection[str] = (), upscale_models: Sequence[str] | None = None) -> NodeCatalog:
    """The node classes of one fake server (a new catalog per server; nothing is shared).

    `without` leaves classes out (a server lacking a custom node); `upscale_models` are the files
    UpscaleModelLoader offers (default: UPSCALE_MODELS)."""
    image_in = InputSpec("image", "IMAGE")
    images_in = InputSpec("images", "IMAGE")
    models = UPSCALE_MODELS if upscale_models is None else tuple(upscale_models)
    specs = [
        NodeSpec("LoadImage", "Load Image", "image",
                 (InputSpec("image", "COMBO", {"image_upload": True}, choices_from_inputs=True),),
                 ("IMAGE", "MASK"), _load_image, custom_validate=_validate_load_image),
        NodeSpec("ETN_LoadImageBase64", "Load Image (Base64)", "external_tooling",
                 (InputSpec("image", "STRING", {"multiline": False}),), ("IMAGE", "MASK"), _load_base64,
                 python_module="custom_nodes.comfyui-tooling-nodes"),
        NodeSpec("SaveImage", "Save Image", "image",
                 (InputSpec("images", "IMAGE", {"tooltip": "The images to save."}),
                  InputSpec("filename_prefix", "STRING", {
                      "default": "ComfyUI",
                      "tooltip": "The prefix for the file to save. This may include formatting information "
                                 "such as %date:yyyy-MM-dd% or %Empty Latent Image.width% to include values "
                                 "from nodes."})),
                 (), _save_image, output_node=True, hidden=HIDDEN_PNG),
        NodeSpec("PreviewImage", "Preview Image", "image", (images_in,), (), _preview_image,
                 output_node=True, hidden=HIDDEN_PNG),
        NodeSpec("ImageScaleBy", "Upscale Image By", "image/upscaling",
                 (image_in, InputSpec("upscale_method", "COMBO", choices=SCALE_METHODS),
                  InputSpec("scale_by", "FLOAT", {"default": 1.0, "min": 0.01, "max": 8.0, "step": 0.01})),
                 ("IMAGE",), _scale_by),
        NodeSpec("ImageInvert", "Invert Image", "image", (image_in,), ("IMAGE",), _invert),
        NodeSpec("MaskToImage", "Convert Mask to Image", "mask", (InputSpec("mask", "MASK"),), ("IMAGE",),
                 _mask_to_image, python_module="comfy_extras.nodes_mask"),
        NodeSpec("UpscaleModelLoader", "Load Upscale Model", "loaders",
                 (InputSpec("model_name", "COMBO", choices=models, v3=True),), ("UPSCALE_MODEL",),
                 _load_upscale_model, python_module="comfy_extras.nodes_upscale_model", v3=True,
                 model_input="model_name"),
        NodeSpec("ImageUpscaleWithModel", "Upscale Image (using Model)", "image/upscaling",
                 (InputSpec("upscale_model", "UPSCALE_MODEL", v3=True), InputSpec("image", "IMAGE", v3=True)),
                 ("IMAGE",), _upscale_with_model, python_module="comfy_extras.nodes_upscale_model", v3=True,
                 reports_progress=True),
        NodeSpec("InspyrenetRembg", "Inspyrenet Rembg", "image",
                 (image_in, InputSpec("torchscript_jit", "COMBO", choices=("default", "on"))),
                 ("IMAGE", "MASK"), _remove_background,
                 python_module="custom_nodes.ComfyUI-Inspyrenet-Rembg", loads_own_model=True),
        *media_specs(),
    ]
    unknown = set(without) - {spec.name for spec in specs}
    if unknown:
        raise ValueError(f"no such node class to leave out: {sorted(unknown)}")
    return NodeCatalog(spec for spec in specs if spec.name not in without)
