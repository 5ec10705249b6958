"""The backup catalog on real Blob storage (Azurite): one index-tag query, no read per backup."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from azure.storage.blob import BlobServiceClient

from dr_core.backup_store import BlobBackupStore
from dr_core.catalog import TAG_CATALOG, TAG_SERVICE, TAG_STATE, backup_blob_name, backup_tags, entry_from_tags

BACKUP_ACCOUNT = "apimdrbackups"


def test_finding_a_services_backups_is_one_request_however_many_there_are(azurite):
    service_client = BlobServiceClient.from_connection_string(azurite.connection_string(BACKUP_ACCOUNT))
    container = f"cat{uuid.uuid4().hex[:12]}"
    service_client.create_container(container)
    service = f"apim-{uuid.uuid4().hex[:8]}"
    base = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    for day in range(40):
        created = base + timedelta(hours=day)
        blob = service_client.get_blob_client(container, backup_blob_name(service, created))
        blob.upload_blob(b"x" * (day + 1))
        blob.set_blob_tags(backup_tags(service_name=service, sku="Standard", created=created,
                                       job_id=f"backup-{day}", size=day + 1, location="West Europe"))
    other = service_client.get_blob_client(container, backup_blob_name("apim-other", base))
    other.upload_blob(b"y")
    other.set_blob_tags(backup_tags(service_name="apim-other", sku="Premium", created=base, job_id="b", size=1))

    responses: list[str] = []
    counted = BlobServiceClient.from_connection_string(
        azurite.connection_string(BACKUP_ACCOUNT),
        raw_response_hook=lambda r: responses.append(r.http_request.url))
    entries = BlobBackupStore(counted, account=BACKUP_ACCOUNT).find(container, service)

    assert len(entries) == 40 and len(responses) == 1, responses
    assert [e.size for e in entries] == list(range(40, 0, -1))  # newest first
    newest = entries[0]
    assert (newest.sku, newest.location, newest.job_id) == ("Standard", "West Europe", "backup-39")
    assert newest.created == base + timedelta(hours=39)


def test_the_catalog_tag_alone_gives_the_same_entry_as_every_tag():
    created = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    tags = backup_tags(service_name="apim-a", sku="Premium", created=created, job_id="backup-x", size=123,
                       location="East US 2")
    name = backup_blob_name("apim-a", created)
    only_queried = {k: tags[k] for k in (TAG_SERVICE, TAG_CATALOG)}  # what the catalog query's answer holds
    assert entry_from_tags("c", name, only_queried) == entry_from_tags("c", name, tags)
    # The catalog tag stands for state=succeeded; without it, the state tag decides.
    assert entry_from_tags("c", name, {**only_queried, TAG_STATE: "running"}) is None
    assert entry_from_tags("c", name, {k: v for k, v in tags.items() if k != TAG_CATALOG}) is not None
    assert entry_from_tags("c", name, {k: v for k, v in tags.items() if k not in (TAG_CATALOG, TAG_STATE)}) is None
    assert entry_from_tags("c", name, {**only_queried, TAG_CATALOG: "v1/garbage"}) is None
    assert len(tags) <= 10  # Blob Storage allows at most 10 index tags per blob
