"""Benchmarks of the gateway against fake ComfyUI servers (`make bench`)."""
