"""comfy-gateway: a production HTTP API in front of a pool of ComfyUI servers."""

__version__ = "0.1.0"
