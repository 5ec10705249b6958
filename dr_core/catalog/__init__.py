"""The catalog of recovery points: how backups are named, labelled (index tags, metadata) and found.

:mod:`.naming` builds and parses blob names, :mod:`.tags` the tags and the one-query catalog search,
:mod:`.entry` is one recovery point and whether it can be restored, :mod:`.relabel` gives backups
labelled before the catalog tag that tag, and :mod:`.listing` is the catalog use case
(``GET /api/backups``, ``apim-dr backups``).
"""
