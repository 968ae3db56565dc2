"""Workflows as data: the built-ins, rendering, parameters, extra files."""

from __future__ import annotations

import json

import pytest

from comfy_gateway.errors import InvalidInput
from comfy_gateway.workflows.registry import WorkflowRegistry


def test_builtins_match_the_original_graphs():
    registry = WorkflowRegistry.load()
    rembg = registry.get("remove-background")
    assert rembg.graph["2"] == {"class_type": "InspyrenetRembg",
                                "inputs": {"torchscript_jit": "default", "image": ["11", 0]}}
    assert (rembg.input_node, rembg.result_node, rembg.input_mode) == ("11", "17", "base64")
    upscale = registry.get("upscale-image")
    assert upscale.graph["3"]["inputs"]["model_name"] == "4x_NMKD-Siax_200k.pth"
    assert upscale.graph["7"]["inputs"] == {"upscale_method": "bicubic", "scale_by": 0.5, "image": ["5", 0]}
    assert upscale.result_node == "10"


def test_render_injects_image_sets_params_and_makes_prefixes_unique():
    wf = WorkflowRegistry.load().get("upscale-image")
    graph = wf.render("QUJD", run_tag="job1_2", params={"scale_by": 0.25})
    assert graph["8"]["inputs"]["image"] == "QUJD"
    assert graph["7"]["inputs"]["scale_by"] == 0.25
    assert graph["10"]["inputs"]["filename_prefix"] == "upscaled_job1_2"
    assert wf.graph["10"]["inputs"]["filename_prefix"] == "upscaled"  # the template is untouched


def test_parameters_are_typed_and_checked():
    wf = WorkflowRegistry.load().get("upscale-image")
    assert wf.validate_params({"scale_by": "0.75"}) == {"scale_by": 0.75}
    for bad in ({"scale_by": "nan"}, {"scale_by": "9"}, {"scale_by": "x"}, {"steps": "3"}):
        with pytest.raises(InvalidInput):
            wf.validate_params(bad)


def test_upload_mode_swaps_the_loader_for_core_load_image():
    wf = WorkflowRegistry.load(input_mode="upload").get("remove-background")
    assert wf.input_mode == "upload"
    assert wf.graph["11"]["class_type"] == "LoadImage"
    assert wf.graph["2"]["inputs"]["image"] == ["11", 0]


def test_extra_workflows_from_a_directory(tmp_path):
    (tmp_path / "invert.json").write_text(json.dumps({
        "name": "invert", "input": {"node": "1", "mode": "upload"}, "result": {"node": "3"},
        "graph": {"1": {"class_type": "LoadImage", "inputs": {"image": ""}},
                  "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
                  "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inv"}}}}))
    registry = WorkflowRegistry.load(tmp_path)
    assert "invert" in registry and "upscale-image" in registry
    (tmp_path / "broken.json").write_text(json.dumps({"name": "broken", "input": {"node": "9"},
                                                      "result": {"node": "1"}, "graph": {"1": {}}}))
    with pytest.raises(ValueError, match="node '9'"):
        WorkflowRegistry.load(tmp_path)
