"""Shared test machinery: a real gateway on a loopback port, fake ComfyUI servers, test images."""
