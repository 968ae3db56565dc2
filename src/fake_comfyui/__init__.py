"""A protocol-faithful fake ComfyUI server for tests, benchmarks and demos.

In-process (the server listens on a real loopback port):

    async with FakeComfyUI(host="127.0.0.1", port=0, service_time=0.0, name=None,
                           without_nodes=(), models=None, model_load_time=0.0) as fake:
        fake.url, fake.host_port, fake.port
        fake.set_service_time(s); fake.set_view_delay(s); fake.set_model_load_time(s)
        fake.pause(); fake.resume()
        fake.fail_next(n, message="Injected failure"); fake.hang_next(n)
        fake.interrupt(prompt_id=None)
        await fake.drop_sockets()
        await fake.stop(); await fake.start()   # same port; history and files kept, queue lost
        fake.stats(); fake.reset_stats()

As a process: `python -m fake_comfyui --port 0` prints
`fake_comfyui listening on http://HOST:PORT`; steer it with POST /fake/control and read
GET /fake/stats (see `control.py`).
"""

from .errors import (
    ExecutionInterrupted,
    FakeComfyError,
    MalformedRequest,
    NodeExecutionError,
    RequestRejected,
)
from .server import FakeComfyUI, ServerState

__all__ = [
    "ExecutionInterrupted",
    "FakeComfyError",
    "FakeComfyUI",
    "MalformedRequest",
    "NodeExecutionError",
    "RequestRejected",
    "ServerState",
]
