"""``apim-dr``: the operator CLI (``python -m dr_core``). It calls the use cases and formats their typed results."""

from .commands import main

__all__ = ["main"]
