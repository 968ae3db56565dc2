"""Admission.stop: each sync request still waiting is woken at once, through its own event."""

from __future__ import annotations

import asyncio
from typing import cast

from comfy_gateway.comfyui.instance import InstancePool
from comfy_gateway.dispatch.dispatcher import Dispatcher
from comfy_gateway.service import Admission


async def test_stop_sets_the_events_of_the_waits_under_way_and_no_others() -> None:
    admission = Admission(cast(InstancePool, None), cast(Dispatcher, None), log=None)  # neither is used here
    under_way, finished = asyncio.Event(), asyncio.Event()
    with admission.sync_wait(finished):
        pass
    with admission.sync_wait(under_way):
        admission.stop()
        assert under_way.is_set() and admission.stopped.is_set()
    assert not finished.is_set()  # its wait was over before the stop
