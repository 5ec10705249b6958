"""The storage adapters on Azurite: records (conditional JSON state), restore locks, blob documents and deletes."""

from __future__ import annotations

import uuid

import pytest
from azure.data.tables import TableClient
from azure.storage.blob import BlobServiceClient

from dr_core.azure.blobs import BlobBackupStore
from dr_core.azure.tables import TableJobStore, TableRecordStore, TableRestoreLocks
from dr_core.jobs.locks import RestoreLock
from dr_core.kernel.ids import ApimResourceId
from dr_core.ports import DeleteOutcome, RecordConflictError, RecordKind, StoredRecord
from dr_core.records import Records, record_key
from dr_core.retention.cursor import RetentionCursor

TARGET = ApimResourceId.parse("/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg/providers/"
                              "Microsoft.ApiManagement/service/apim-x")


@pytest.fixture
def table(azurite) -> TableClient:
    table = TableClient.from_connection_string(azurite.connection_string(), f"t{uuid.uuid4().hex[:12]}")
    table.create_table()
    return table


def test_records_are_created_once_and_replaced_only_if_unchanged(table: TableClient):
    store = TableRecordStore(table)
    key = record_key(str(TARGET))
    assert "/" not in key and key.startswith("apim-x-") and store.get_record(RecordKind.RPO, key) is None
    first = store.put_record(StoredRecord(RecordKind.RPO, key, {"state": "ok"}))
    with pytest.raises(RecordConflictError):
        store.put_record(StoredRecord(RecordKind.RPO, key, {"state": "other"}))  # exists already
    a, b = store.get_record(RecordKind.RPO, key), store.get_record(RecordKind.RPO, key)
    assert a is not None and b is not None and a.data == {"state": "ok"} and a.etag == first.etag
    a.data["state"] = "breached"
    store.put_record(a)
    b.data["state"] = "late writer"
    with pytest.raises(RecordConflictError):
        store.put_record(b)
    assert [r.data for r in store.records(RecordKind.RPO)] == [{"state": "breached"}]
    assert store.records(RecordKind.DRILL) == []
    with pytest.raises(ValueError):
        store.put_record(StoredRecord(RecordKind.RPO, key + "x", {"big": "x" * 40_000}))
    with pytest.raises(ValueError):
        store.get_record("Bad Kind!", key)  # type: ignore[arg-type]


def test_update_record_reads_again_when_another_writer_was_first(table: TableClient):
    store = TableRecordStore(table)
    cursors = Records(store, RetentionCursor)
    key = f"k{uuid.uuid4().hex[:8]}"
    store.put_record(StoredRecord(RecordKind.RETENTION, key, {"notReached": 1}))
    seen: list[int] = []

    def add_one(old: RetentionCursor | None) -> RetentionCursor:
        assert old is not None
        seen.append(old.not_reached)
        if len(seen) == 1:  # another writer gets in between this read and this write
            other = store.get_record(RecordKind.RETENTION, key)
            assert other is not None
            store.put_record(StoredRecord(RecordKind.RETENTION, key, {"notReached": 10}, other.etag))
        return RetentionCursor(None, None, old.not_reached + 1)

    written = cursors.update(key, add_one)
    assert written is not None and written.value.not_reached == 11 and seen == [1, 10]
    assert cursors.update(key, lambda old: None) is None  # "leave it": nothing written
    made = cursors.update(f"{key}-new", lambda old: RetentionCursor("x", None, 0) if old is None else None)
    assert made is not None and made.value.resume_after == "x"

    def always_beaten(old: RetentionCursor | None) -> RetentionCursor:
        current = store.get_record(RecordKind.RETENTION, key)
        assert current is not None
        store.put_record(StoredRecord(RecordKind.RETENTION, key, {"notReached": 0}, current.etag))
        return RetentionCursor(None, None, -1)

    with pytest.raises(RecordConflictError, match="kept changing"):
        cursors.update(key, always_beaten, attempts=2)


def test_restore_lock_is_taken_once_and_freed_by_its_holder(table: TableClient):
    locks = TableRestoreLocks(table)
    lock = RestoreLock(jobs=TableJobStore(table), locks=locks)
    assert lock.take(TARGET, "restore-20261130T020000Z-apim-x-00000001")
    holder = locks.lock_holder(TARGET)
    assert holder is not None and holder.job_id == "restore-20261130T020000Z-apim-x-00000001"
    # The holder's job row does not exist (never created): an unknown holder counts as ended.
    assert lock.take(TARGET, "restore-20261130T020001Z-apim-x-00000002")
    holder = locks.lock_holder(TARGET)
    assert holder is not None and holder.job_id == "restore-20261130T020001Z-apim-x-00000002"


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
