"""`extra_data.api_key_comfy_org` reaches the server with the prompt and no answer of the gateway."""

from __future__ import annotations

import httpx

from comfy_gateway.dispatch.execution import prompt_id_for
from support.gateway import RunningGateway
from support.images import png
from support.v2 import invert_graph

KEY = "comfyui-partner-secret"


async def test_the_partner_key_is_forwarded_and_never_shown(v2gw: RunningGateway) -> None:
    asset = (await v2gw.client.post("/api/v2/assets", files={"file": ("in.png", png(), "image/png")},
                                    data={"file_path": "in.png"})).json()
    body = {"workflow": invert_graph({"__type": "core/ASSET", "info": {"id": asset["id"]}}),
            "extra_data": {"api_key_comfy_org": KEY}}
    job = (await v2gw.client.post("/api/v2/jobs", json=body)).json()
    done = await v2gw.gateway.service.wait(job["id"], 20)

    fake = next(f for f in v2gw.fakes if f.host_port == done.instance)
    prompt_id = prompt_id_for(job["id"], 1)
    async with httpx.AsyncClient() as client:
        history = (await client.get(f"{fake.url}/history/{prompt_id}")).json()[prompt_id]
    assert history["prompt"][3]["api_key_comfy_org"] == KEY
    for url in (job["urls"]["self"], f"/api/jobs/{job['id']}/info", "/api/jobs/list", "/api/v2/jobs",
                job["urls"]["events"]):
        answer = await v2gw.client.get(url)
        assert answer.status_code == 200 and KEY not in answer.text, url
