"""Backups: planning them (one job per protected instance per schedule slot, or on demand) and, once one
succeeds, writing its manifest (what the source contained: the names a restore drill verifies against).

The backup itself runs as a job (:mod:`dr_core.jobs`); its blob's name, tags and catalog entry are
:mod:`dr_core.catalog`'s.
"""
