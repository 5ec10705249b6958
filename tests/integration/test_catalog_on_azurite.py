"""The backup catalog on real Blob storage (Azurite): one index-tag query, no read per backup."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from azure.storage.blob import BlobServiceClient

from dr_core.azure.blobs import BlobBackupStore
from dr_core.catalog.naming import backup_blob_name
from dr_core.catalog.tags import TAG_CATALOG, TAG_SERVICE, TAG_STATE, backup_tags, entry_from_tags

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


def test_backups_labelled_before_the_catalog_tag_are_found_and_relabelled(azurite):
    from dr_core.catalog.relabel import RelabelOutcome, relabel_older_backups

    service_client = BlobServiceClient.from_connection_string(azurite.connection_string(BACKUP_ACCOUNT))
    container = f"old{uuid.uuid4().hex[:12]}"
    service_client.create_container(container)
    service = f"apim-{uuid.uuid4().hex[:8]}"
    store = BlobBackupStore(service_client, account=BACKUP_ACCOUNT)
    created = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    names = []
    for hours, catalog in ((0, True), (24, False), (48, False)):
        name = backup_blob_name(service, created + timedelta(hours=hours))
        tags = backup_tags(service_name=service, sku="Premium", created=created + timedelta(hours=hours),
                           job_id=f"backup-{hours}", size=hours + 1, location="North Europe")
        blob = service_client.get_blob_client(container, name)
        blob.upload_blob(b"z", metadata={"job_id": f"backup-{hours}"})
        blob.set_blob_tags(tags if catalog else {k: v for k, v in tags.items() if k != TAG_CATALOG})
        names.append(name)
    # Another service's older backup and a blob without apim-dr's labels: never touched.
    other = backup_blob_name("apim-other", created)
    service_client.get_blob_client(container, other).upload_blob(b"o", tags={TAG_SERVICE: "apim-other",
                                                                             TAG_STATE: "succeeded"})
    service_client.get_blob_client(container, f"{service}/notes.txt").upload_blob(b"n", tags={TAG_SERVICE: service})

    assert [e.blob_name for e in store.find(container, service)] == [names[0]]  # the query misses the older two
    assert sorted(store.finished_names(container, service)) == sorted(names)
    dry = relabel_older_backups(store, container, service, known={names[0]}, dry_run=True)
    assert [(r.blob_name, r.outcome) for r in dry] == [(n, RelabelOutcome.WOULD_RELABEL) for n in names[1:]]
    assert [e.blob_name for e in store.find(container, service)] == [names[0]]

    done = relabel_older_backups(store, container, service, known={names[0]}, dry_run=False)
    assert [r.outcome for r in done] == [RelabelOutcome.RELABELLED] * 2
    found = store.find(container, service)
    assert [e.blob_name for e in found] == [names[2], names[1], names[0]]
    assert [(e.sku, e.size, e.job_id, e.location) for e in found] == [
        ("Premium", 49, "backup-48", "North Europe"), ("Premium", 25, "backup-24", "North Europe"),
        ("Premium", 1, "backup-0", "North Europe")]
    assert {r.entry for r in done} == set(found[:2])  # what the relabel said the catalog would show, it shows
    # Tags only: the metadata APIM and apim-dr wrote stays.
    assert service_client.get_blob_client(container, names[1]).get_blob_properties().metadata == {
        "job_id": "backup-24"}
    assert service_client.get_blob_client(container, other).get_blob_tags() == {TAG_SERVICE: "apim-other",
                                                                                TAG_STATE: "succeeded"}
    assert relabel_older_backups(store, container, service, known={e.blob_name for e in found}, dry_run=False) == []
