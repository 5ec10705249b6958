"""Backup blob names, metadata and index tags: built and parsed in one place."""

from datetime import UTC, datetime, timedelta

import pytest

from dr_core.catalog.naming import backup_blob_name, parse_backup_blob_name
from dr_core.catalog.tags import backup_metadata, backup_tags

SUB = "00000000-0000-0000-0000-000000000001"


def rid(name="apim-one", rg="rg1", sub=SUB):
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ApiManagement/service/{name}"


def test_blob_name_round_trip():
    moment = datetime(2026, 11, 22, 2, 0, 0, tzinfo=UTC)
    name = backup_blob_name("apim-one", moment)
    assert name == "apim-one/2026/11/22/apim-one-20261122T020000Z.apimbackup"
    parsed = parse_backup_blob_name(name)
    assert parsed.service_name == "apim-one" and parsed.created == moment
    assert parsed.expires - parsed.created == timedelta(days=30)


@pytest.mark.parametrize("bad", [
    "apim-one/2026/11/22/apim-two-20261122T020000Z.apimbackup",
    "apim-one/2026/11/23/apim-one-20261122T020000Z.apimbackup",
    "apim-one/2026/11/22/apim-one-20261122T020000Z.bak", "../etc/passwd", "x" * 300,
])
def test_foreign_blob_names_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_backup_blob_name(bad)


def test_metadata_and_tags_carry_expiry():
    created = datetime(2026, 11, 22, 2, 0, 5, tzinfo=UTC)
    md = backup_metadata(source_resource_id=rid(), sku="Standard", sku_capacity=1, location="West Europe",
                         job_id="j", api_version="2024-05-01", created=created)
    assert md["expires"] == "2026-12-22T02:00:05Z" and md["created"] == "2026-11-22T02:00:05Z"
    tags = backup_tags(service_name="Apim-One", sku="Standard", created=created, job_id="j")
    assert tags["apimdr_service"] == "apim-one" and tags["apimdr_expires"] == "2026-12-22T02:00:05Z"
    assert len(tags) <= 10  # Azure's limit of index tags per blob

