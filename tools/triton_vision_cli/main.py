"""The ``triton-vision`` entry point."""

from triton_vision_client.cli import main

__all__ = ["main"]
