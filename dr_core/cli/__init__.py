"""``apim-dr``: the operator CLI (``python -m dr_core``). It calls the use cases and formats their typed results.

:mod:`.parser` declares the commands (each names the function that runs it), :mod:`.commands` runs
them on :class:`~dr_core.usecases.UseCases`, :mod:`.output` prints, :mod:`.main` is the entry point.
"""

from .main import main

__all__ = ["main"]
