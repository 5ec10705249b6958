"""Taking a configuration snapshot on fakes: paced reads across steps, the document, unchanged configuration,
throttling, vanished items, missing permissions, lost staging, and the shared read budget."""

from __future__ import annotations

import gzip
import json

import pytest

from dr_core.catalog.entry import RecoveryPointKind
from dr_core.jobs.job import Job, Trigger
from dr_core.jobs.messages import WorkMessage
from dr_core.kernel.errors import ArmError, AzureUnavailableError
from dr_core.kernel.phases import JobState
from dr_core.snapshots.document import SnapshotDocument
from tests.unit.fakes import T0, World, rid, settings, world

CONTAINER = "apim-backups"
SECRET = "s3cr3t-value-never-stored"


def snapshot_world(tier: str = "StandardV2", *, page_size: int = 2, reads_per_second: str = "20",
                   standby: str | None = None) -> World:
    entry = {"resourceId": rid("apim-prod"), "recovery": "snapshot", **({"standby": rid(standby)} if standby else {})}
    w = world(settings([entry], APIM_DR_SNAPSHOT_READS_PER_SECOND=reads_per_second))
    w.arm.add_service("apim-prod", sku=tier)
    w.reader.page_size = page_size
    add = w.reader.add
    add("apim-prod", "policy", value="<policies><inbound /></policies>", format="xml")
    add("apim-prod", "named-values/backend-url", displayName="backend-url", value="https://orders", secret=False)
    add("apim-prod", "named-values/signing-key", displayName="signing-key", value=SECRET, secret=True)
    add("apim-prod", "backends/orders", url="https://orders", protocol="http")
    add("apim-prod", "groups/developers", displayName="Developers", type="system")
    for api in ("echo-api", "orders-api", "stats-api"):
        add("apim-prod", f"apis/{api}", displayName=api, path=api.split("-")[0],
            apiVersionSetId=f"{rid('apim-prod')}/apiVersionSets/v1")
        add("apim-prod", f"apis/{api}/policy", value=f"<policies><!-- {api} --></policies>", format="xml")
        for op in ("get", "post", "delete"):
            add("apim-prod", f"apis/{api}/operations/{op}", displayName=op, method=op.upper(), urlTemplate="/")
        add("apim-prod", f"apis/{api}/operations/get/policy", value="<policies />", format="xml")
    add("apim-prod", "apis/echo-api;rev=2", displayName="echo-api", path="echo", apiRevision="2")
    add("apim-prod", "apis/echo-api;rev=2/operations/get", displayName="get", method="GET", urlTemplate="/v2")
    add("apim-prod", "products/starter", displayName="Starter", state="published")
    add("apim-prod", "products/starter/apis/echo-api")
    add("apim-prod", "products/starter/groups/developers")
    return w


def start(w: World) -> Job:
    job = Job.new_snapshot(w.ctx.settings, w.ctx.settings.instances[0], w.clock.now(), trigger=Trigger.SCHEDULE,
                           now=w.clock.now())
    w.ctx.launcher().launch(job)
    return job


def run(w: World, job_id: str, *, max_steps: int = 200) -> Job:
    """Deliver every message the worker sends, letting each delay pass on the clock, until the job ends."""
    worker = w.ctx.worker(followers=[])
    for _ in range(max_steps):
        sent = w.queue.take()
        if not sent:
            break
        for message, delay in sent:
            w.clock.advance(delay)
            worker.handle(message.encode())
    return w.store.rows[job_id]


def document_of(w: World, job: Job) -> SnapshotDocument:
    return SnapshotDocument.from_bytes(w.backups.contents[(CONTAINER, job.blob_name)])


def test_a_snapshot_reads_every_item_over_several_steps_and_writes_one_catalogued_document() -> None:
    w = snapshot_world()
    job = run(w, start(w).job_id)
    assert job.state is JobState.SUCCEEDED, (job.error_code, job.error_message)
    document = document_of(w, job)
    ids = {str(i.item_id) for i in document.items}
    assert {"policy", "named-values/backend-url", "named-values/signing-key", "backends/orders", "groups/developers",
            "apis/echo-api", "apis/echo-api/policy", "apis/echo-api/operations/get/policy",
            "apis/echo-api;rev=2", "apis/echo-api;rev=2/operations/get", "products/starter/apis/echo-api",
            "products/starter/groups/developers"} <= ids
    assert len(document.items) == len(w.reader.configurations["apim-prod"])  # nothing more, nothing less
    # References to the instance itself are stored relative to it.
    assert document.item("apis/orders-api").properties["apiVersionSetId"] == "/apiVersionSets/v1"  # type: ignore[union-attr]
    # Every read the snapshot made is counted on the job (pages and gets, and the service's own GET).
    assert job.snapshot is not None and job.snapshot.reads == len(w.reader.reads) + 1
    assert job.snapshot.items == len(document.items) and job.snapshot.pending == 0
    assert job.snapshot.content_hash == document.content_hash and job.snapshot.same_as is None
    # Catalogued by its tags, as a snapshot of the instance's tier, at the time the reading began.
    entry = w.backups.find(CONTAINER, "apim-prod")[0]
    assert entry.kind is RecoveryPointKind.SNAPSHOT and entry.blob_name == job.blob_name
    assert entry.sku == "StandardV2" and entry.created == job.started_at and entry.expires is None
    assert document.content_hash.startswith(entry.content_hash or "?")
    assert w.staging.blobs == {}  # scratch space cleaned up


def test_no_secret_value_is_ever_in_a_snapshot_or_its_scratch_space() -> None:
    w = snapshot_world()
    job = start(w)
    seen: list[bytes] = []
    original_put = w.staging.put

    def spy(name: str, data: bytes) -> None:
        seen.append(gzip.decompress(data) if name.endswith(".gz") else data)
        original_put(name, data)

    w.staging.put = spy  # type: ignore[method-assign]
    job = run(w, job.job_id)
    document = document_of(w, job)
    raw = gzip.decompress(w.backups.contents[(CONTAINER, job.blob_name)])
    assert SECRET.encode() not in raw and not any(SECRET.encode() in blob for blob in seen)
    assert [(n.item_id, n.reason) for n in document.not_captured] == [
        ("named-values/signing-key", "secret, value not captured")]
    assert SECRET not in json.dumps(job.public_view(now=w.clock.now()))


def test_an_unchanged_configuration_writes_no_second_document_but_records_a_recovery_point() -> None:
    w = snapshot_world()
    first = run(w, start(w).job_id)
    w.clock.advance(3600)
    second = run(w, start(w).job_id)
    assert second.state is JobState.SUCCEEDED
    assert second.snapshot is not None and second.snapshot.same_as == first.blob_name
    assert second.blob_name == first.blob_name
    assert w.backups.calls.count("put_document") == 1
    entries = w.backups.find(CONTAINER, "apim-prod")
    assert len(entries) == 1 and entries[0].created == second.started_at and entries[0].taken == first.started_at
    # A change is a new document.
    w.reader.add("apim-prod", "apis/echo-api", displayName="echo-api", path="changed")
    w.clock.advance(3600)
    third = run(w, start(w).job_id)
    assert third.snapshot is not None and third.snapshot.same_as is None and third.blob_name != first.blob_name
    assert [e.blob_name for e in w.backups.find(CONTAINER, "apim-prod")] == [third.blob_name, first.blob_name]


def test_a_tier_without_groups_is_not_asked_for_them() -> None:
    w = snapshot_world("Consumption")
    job = run(w, start(w).job_id)
    assert job.state is JobState.SUCCEEDED
    assert not any(kind in ("groups", "product-groups") for _, kind, _, _, _ in w.reader.reads)


def test_throttled_and_unreachable_reads_are_read_again_after_retry_after() -> None:
    w = snapshot_world()
    job = start(w)
    run(w, job.job_id, max_steps=1)  # the service's GET: now Running
    w.reader.errors = [ArmError("SubscriptionRequestsThrottled", "Number of 'read' requests exceeded.", 429,
                                retry_after=17), AzureUnavailableError("ARM unreachable (fake)")]
    w.ctx.worker(followers=[]).handle(w.queue.take()[0][0].encode())
    waiting = w.store.rows[job.job_id]
    assert waiting.state is JobState.RUNNING and waiting.wait_reason and "Retry-After" in waiting.wait_reason
    resumed = w.queue.take()
    assert [d for _, d in resumed] == [30]  # the longest wait of the step: the outage's
    for message, delay in resumed:
        w.clock.advance(delay)
        w.ctx.worker(followers=[]).handle(message.encode())
    done = run(w, job.job_id)
    assert done.state is JobState.SUCCEEDED and done.snapshot is not None and done.snapshot.throttled == 1
    assert len(document_of(w, done).items) == len(w.reader.configurations["apim-prod"])


def test_an_item_deleted_while_being_read_is_skipped_and_counted() -> None:
    w = snapshot_world(page_size=50)
    job = start(w)
    run(w, job.job_id, max_steps=2)  # service GET, then the top-level lists (APIs listed)
    for key in [k for k in w.reader.configurations["apim-prod"] if k.startswith("apis/stats-api")]:
        del w.reader.configurations["apim-prod"][key]
    done = run(w, job.job_id)
    assert done.state is JobState.SUCCEEDED and done.snapshot is not None and done.snapshot.vanished > 0


def test_a_missing_read_permission_fails_the_snapshot_with_what_to_grant() -> None:
    w = snapshot_world()
    job = start(w)
    run(w, job.job_id, max_steps=1)
    w.reader.errors = [ArmError("AuthorizationFailed", "The client 'x' does not have authorization to perform action "
                                "'Microsoft.ApiManagement/service/backends/read' over scope '...'.", 403)]
    failed = run(w, job.job_id)
    assert failed.state is JobState.FAILED and failed.error_code == "AuthorizationFailed"
    assert failed.remediation is not None and "APIM DR Operator" in failed.remediation
    assert (CONTAINER, job.blob_name) not in w.backups.contents


def test_an_instance_that_does_not_exist_fails_at_once() -> None:
    w = snapshot_world()
    del w.arm.services["apim-prod"]
    failed = run(w, start(w).job_id)
    assert failed.state is JobState.FAILED and failed.error_code == "ResourceNotFound"


def test_reads_wait_for_the_shared_budget_and_never_exceed_it() -> None:
    w = snapshot_world(page_size=50, reads_per_second="5")
    for i in range(120):  # 120 APIs: 6 reads each, well beyond the burst of 200
        w.reader.add("apim-prod", f"apis/bulk-{i:03d}", displayName=f"bulk {i}", path=f"bulk{i}")
    job = start(w)
    worker = w.ctx.worker(followers=[])
    steps: list[tuple[float, int]] = []
    while sent := w.queue.take():
        for message, delay in sent:
            w.clock.advance(delay)
            before = len(w.reader.reads)
            worker.handle(message.encode())
            steps.append(((w.clock.now() - T0).total_seconds(), len(w.reader.reads) - before))
    done = w.store.rows[job.job_id]
    assert done.state is JobState.SUCCEEDED and len(w.reader.reads) > 600
    # Burst 200, then 5 per second: by any moment t, at most 200 + 5 t reads were made (+1: the service GET).
    made = 0
    for moment, count in steps:
        made += count
        assert made <= 200 + 5 * moment + 1, (moment, made)
    assert any(count == 0 for _, count in steps[2:])  # it did run dry and wait


def test_the_budget_is_shared_so_a_second_snapshot_of_the_subscription_waits() -> None:
    w = snapshot_world(reads_per_second="1")
    budget = w.ctx.read_budget()
    grant = budget.take(rid("apim-prod").split("/")[2], 200, now=w.clock.now())
    assert grant.granted == 200
    job = start(w)
    run(w, job.job_id, max_steps=1)
    w.ctx.worker(followers=[]).handle(w.queue.take()[0][0].encode())
    waiting = w.store.rows[job.job_id]
    assert waiting.wait_reason == "waiting for ARM's read budget" and len(w.reader.reads) == 0


def test_lost_scratch_space_makes_the_snapshot_read_again_not_fail() -> None:
    w = snapshot_world()
    job = start(w)
    run(w, job.job_id, max_steps=3)
    w.staging.blobs.clear()
    done = run(w, job.job_id)
    assert done.state is JobState.SUCCEEDED
    assert len(document_of(w, done).items) == len(w.reader.configurations["apim-prod"])


def test_a_repeated_or_stale_message_does_not_read_twice() -> None:
    w = snapshot_world()
    job = start(w)
    run(w, job.job_id, max_steps=1)
    message, _ = w.queue.take()[0]
    worker = w.ctx.worker(followers=[])
    worker.handle(message.encode())
    reads = len(w.reader.reads)
    worker.handle(message.encode())  # the same step delivered twice
    worker.handle(WorkMessage("start", job=job.job_id).encode())  # a start for a running snapshot
    assert len(w.reader.reads) == reads


def test_a_document_written_just_before_a_crash_is_adopted_not_refused() -> None:
    w = snapshot_world()
    job = start(w)
    original = w.backups.put_document
    crashed = False

    def put_then_crash(*args: object, **kwargs: object) -> None:
        nonlocal crashed
        original(*args, **kwargs)  # type: ignore[arg-type]
        if not crashed:
            crashed = True
            raise AzureUnavailableError("the host died after the write (fake)")

    w.backups.put_document = put_then_crash  # type: ignore[method-assign]
    done = run(w, job.job_id)
    assert done.state is JobState.SUCCEEDED and crashed
    assert list(w.backups.contents) == [(CONTAINER, done.blob_name)]


@pytest.mark.parametrize("tier", ["Developer", "Basic", "Standard", "Premium", "BasicV2", "StandardV2", "PremiumV2",
                                  "Consumption"])
def test_every_tier_can_be_snapshotted(tier: str) -> None:
    w = snapshot_world(tier)
    assert run(w, start(w).job_id).state is JobState.SUCCEEDED
