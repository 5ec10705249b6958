"""Retention: deleting each instance's old backups, never one a restore may still need.

:mod:`.plan` decides (pure), :mod:`.pruner` deletes (or, dry run, reports), :mod:`.report` is what
a run did, :mod:`.cursor` where the last budgeted run stopped.
"""
