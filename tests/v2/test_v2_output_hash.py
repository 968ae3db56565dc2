"""Outputs carry the contract's `blake3:<hex>`, computed while they streamed into storage."""

from __future__ import annotations

from blake3 import blake3
from comfy_sdk import AsyncComfy

from comfy_gateway.access import ANONYMOUS
from support.gateway import RunningGateway
from support.images import png
from support.v2 import LOADER, SAVE, invert_graph
from support.v2_contract import validate


async def test_an_output_has_the_blake3_of_its_bytes(sdk: AsyncComfy, v2gw: RunningGateway) -> None:
    workflow = sdk.workflows.from_json(invert_graph())
    workflow.set_input(LOADER, "image", sdk.assets.from_bytes(png(20, 10), filename="in.png"))
    job = await sdk.run(workflow)
    [output] = job.get_outputs(SAVE)
    data = await output.to_bytes()
    expected = "blake3:" + blake3(data).hexdigest()

    body = (await v2gw.client.get(f"/api/v2/jobs/{job.id}")).json()
    [shown] = body["outputs"]
    validate("output", shown)
    assert shown["hash"] == expected
    as_asset = (await v2gw.client.get(f"/api/v2/assets/{output.id}")).json()
    validate("asset", as_asset)
    assert as_asset["hash"] == expected
    [stored] = (await v2gw.gateway.service.get(job.id, ANONYMOUS)).outputs  # kept beside the SHA-256
    assert stored.blake3 == expected.removeprefix("blake3:") and len(stored.sha256) == 64
