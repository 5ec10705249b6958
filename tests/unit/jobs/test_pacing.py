"""ARM's read budget, shared through one record per subscription: never more than the bucket, never lost."""

from __future__ import annotations

from datetime import timedelta

from dr_core.jobs.pacing import ReadBudget, TokenBucket
from dr_core.ports import RecordConflictError, RecordKind, StoredRecord
from tests.unit.fakes import SUB, T0, FakeTables


def test_the_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    bucket = TokenBucket(capacity=200, rate=20)
    assert bucket.level(0, None, T0) == 200  # never used: full
    assert bucket.level(0, T0, T0 + timedelta(seconds=3)) == 60
    assert bucket.level(150, T0, T0 + timedelta(hours=1)) == 200
    assert bucket.level(10, T0, T0 - timedelta(seconds=30)) == 10  # another instance's clock ahead: no refill
    assert bucket.wait_for(0.5) == 0.025 and bucket.wait_for(3) == 0


def test_takers_share_one_bucket_per_subscription() -> None:
    store = FakeTables()
    budget = ReadBudget(store, reads_per_second=20)
    assert budget.take(SUB, 150, now=T0).granted == 150
    assert budget.take(SUB, 150, now=T0).granted == 50  # the burst is 200 (ARM's 250 less a reserve)
    empty = budget.take(SUB, 10, now=T0)
    assert empty.granted == 0 and empty.retry_after == 0.1  # one read in 1/20 s, asked again no sooner than 0.1 s
    assert budget.take(SUB, 10, now=T0 + timedelta(seconds=1)).granted == 10  # 20 refilled, 10 taken
    other = "00000000-0000-0000-0000-0000000000dd"
    assert budget.take(other, 200, now=T0).granted == 200  # another subscription has its own bucket
    assert budget.take(SUB.upper(), 10, now=T0 + timedelta(seconds=1)).granted == 10  # IDs in any case


def test_a_lost_race_reads_the_bucket_again_and_never_grants_twice() -> None:
    store = FakeTables()
    budget = ReadBudget(store, reads_per_second=20)
    budget.take(SUB, 100, now=T0)
    original = store.put_record
    calls = 0

    def contested(record: StoredRecord) -> StoredRecord:
        nonlocal calls
        calls += 1
        if calls == 1:  # another instance takes 90 between our read and our write
            current = store.get_record(RecordKind.ARM_BUDGET, SUB.lower())
            assert current is not None
            original(type(current)(current.kind, current.key, {"tokens": 10, "at": current.data["at"]}, current.etag))
            raise RecordConflictError("changed meanwhile")
        return original(record)

    store.put_record = contested  # type: ignore[method-assign]
    grant = budget.take(SUB, 100, now=T0)
    assert grant.granted == 10 and calls == 2


def test_nothing_is_granted_for_nothing_wanted() -> None:
    grant = ReadBudget(FakeTables(), reads_per_second=20).take(SUB, 0, now=T0)
    assert grant.granted == 0 and grant.retry_after == 0
