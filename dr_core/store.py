"""Kept only for ``emulator/demo.py``, which lists the jobs table with these two (the emulator is changed elsewhere).

The table adapters live in :mod:`dr_core.azure.tables`; once the demo imports them from there, delete this module.
"""

from dr_core.azure.tables import is_job_row, job_from_entity

__all__ = ["is_job_row", "job_from_entity"]
