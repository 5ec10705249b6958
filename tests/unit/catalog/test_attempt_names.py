"""A backup's later attempts write blobs of their own, named beside the first (never over it)."""

from __future__ import annotations

import pytest

from dr_core.catalog.naming import MAX_ATTEMPT, backup_blob_name, parse_backup_blob_name
from dr_core.catalog.tags import backup_tags, entry_from_tags
from tests.unit.fakes import T0


def test_attempt_names_round_trip_and_differ() -> None:
    names = [backup_blob_name("apim-prod", T0, attempt=n) for n in range(1, MAX_ATTEMPT + 1)]
    assert names[0] == "apim-prod/2026/11/30/apim-prod-20261130T020000Z.apimbackup"
    assert names[1] == "apim-prod/2026/11/30/apim-prod-20261130T020000Z-a2.apimbackup"
    assert len(set(names)) == MAX_ATTEMPT
    for n, name in enumerate(names, start=1):
        parsed = parse_backup_blob_name(name)
        assert (parsed.service_name, parsed.created, parsed.attempt, parsed.name) == ("apim-prod", T0, n, name)


@pytest.mark.parametrize("bad", ["apim-prod/2026/11/30/apim-prod-20261130T020000Z-a1.apimbackup",
                                 "apim-prod/2026/11/30/apim-prod-20261130T020000Z-a11.apimbackup",
                                 "apim-prod/2026/11/30/apim-prod-20261130T020000Z-a.apimbackup",
                                 "apim-prod/2026/11/30/apim-prod-20261130T020000Z-b2.apimbackup"])
def test_other_suffixes_are_not_apim_dr_names(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_backup_blob_name(bad)


@pytest.mark.parametrize("attempt", [0, MAX_ATTEMPT + 1])
def test_attempt_numbers_are_bounded(attempt: int) -> None:
    with pytest.raises(ValueError):
        backup_blob_name("apim-prod", T0, attempt=attempt)


def test_a_later_attempts_backup_is_a_catalog_entry() -> None:
    name = backup_blob_name("apim-prod", T0, attempt=3)
    tags = backup_tags(service_name="apim-prod", sku="Standard", created=T0, job_id="j", size=10)
    entry = entry_from_tags("apim-backups", name, tags)
    assert entry is not None and entry.blob_name == name and entry.service_name == "apim-prod"
