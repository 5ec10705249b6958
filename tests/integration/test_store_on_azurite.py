"""The storage adapters on Azurite: records (conditional JSON state), restore locks, blob documents and deletes."""

from __future__ import annotations

import uuid

import pytest
from azure.data.tables import TableClient
from azure.storage.blob import BlobServiceClient

from dr_core.azure.blobs import BlobBackupStore, DeleteOutcome
from dr_core.azure.tables import JobConflictError, Record, TableJobStore, record_key
from dr_core.kernel.ids import ApimResourceId

TARGET = ApimResourceId.parse("/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg/providers/"
                              "Microsoft.ApiManagement/service/apim-x")


@pytest.fixture
def store(azurite) -> TableJobStore:
    table = TableClient.from_connection_string(azurite.connection_string(), f"t{uuid.uuid4().hex[:12]}")
    table.create_table()
    return TableJobStore(table)


def test_records_are_created_once_and_replaced_only_if_unchanged(store: TableJobStore):
    key = record_key(str(TARGET))
    assert "/" not in key and key.startswith("apim-x-") and store.get_record("rpo", key) is None
    first = store.put_record(Record("rpo", key, {"state": "ok"}))
    with pytest.raises(JobConflictError):
        store.put_record(Record("rpo", key, {"state": "other"}))  # exists already
    a, b = store.get_record("rpo", key), store.get_record("rpo", key)
    assert a is not None and b is not None and a.data == {"state": "ok"} and a.etag == first.etag
    a.data["state"] = "breached"
    store.put_record(a)
    b.data["state"] = "late writer"
    with pytest.raises(JobConflictError):
        store.put_record(b)
    assert [r.data for r in store.records("rpo")] == [{"state": "breached"}]
    assert store.records("drill") == []
    with pytest.raises(ValueError):
        store.put_record(Record("rpo", key + "x", {"big": "x" * 40_000}))
    with pytest.raises(ValueError):
        store.get_record("Bad Kind!", key)


def test_update_record_reads_again_when_another_writer_was_first(store: TableJobStore):
    key = f"k{uuid.uuid4().hex[:8]}"
    store.put_record(Record("cursor", key, {"n": 1}))
    seen: list[int] = []

    def add_one(old: dict) -> dict:
        seen.append(old["n"])
        if len(seen) == 1:  # another writer gets in between this read and this write
            other = store.get_record("cursor", key)
            assert other is not None
            store.put_record(Record("cursor", key, {"n": 10}, other.etag))
        return {"n": old["n"] + 1}

    written = store.update_record("cursor", key, add_one)
    assert written is not None and written.data == {"n": 11} and seen == [1, 10]
    assert store.update_record("cursor", key, lambda old: None) is None  # "leave it": nothing written
    made = store.update_record("cursor", f"{key}-new", lambda old: {**old, "made": True})
    assert made is not None and made.data == {"made": True}

    def always_beaten(old: dict) -> dict:
        current = store.get_record("cursor", key)
        assert current is not None
        store.put_record(Record("cursor", key, {"n": 0}, current.etag))
        return {"n": -1}

    with pytest.raises(JobConflictError, match="kept changing"):
        store.update_record("cursor", key, always_beaten, attempts=2)


def test_restore_lock_is_taken_once_and_freed_by_its_holder(store: TableJobStore):
    assert store.take_restore_lock(TARGET, "restore-20261130T020000Z-apim-x-00000001")
    holder = store.lock_holder_id(TARGET)
    assert holder is not None and holder[0] == "restore-20261130T020000Z-apim-x-00000001"
    # The holder's job row does not exist (never created): an unknown holder counts as ended.
    assert store.take_restore_lock(TARGET, "restore-20261130T020001Z-apim-x-00000002")
    holder = store.lock_holder_id(TARGET)
    assert holder is not None and holder[0] == "restore-20261130T020001Z-apim-x-00000002"


def test_documents_and_deletes_on_blob_storage(azurite):
    account = "apimdrbackups"
    service = BlobServiceClient.from_connection_string(azurite.connection_string(account))
    container = f"doc{uuid.uuid4().hex[:12]}"
    service.create_container(container)
    backups = BlobBackupStore(service, account=account)
    backups.put_json(container, "a/b.json", {"apis": ["echo"], "n": 1})
    assert backups.get_json(container, "a/b.json") == {"apis": ["echo"], "n": 1}
    assert backups.get_json(container, "missing.json") is None
    service.get_blob_client(container, "bad.json").upload_blob(b"[" * 5000)
    assert backups.get_json(container, "bad.json") is None
    assert backups.delete(container, "a/b.json") is DeleteOutcome.DELETED
    assert backups.delete(container, "a/b.json") is DeleteOutcome.MISSING
