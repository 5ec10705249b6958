"""A seeded chaos soak of the job machinery: ARM faults on starts and polls, lost answers, host processes killed.

Several host stand-ins (each its own process, as Function App instances are) work on the backups of N protected
instances over several timer slots while the APIM emulator, driven by a seeded random generator, answers starts
and polls with faults (``500``/``503``, ``429``, ``409 ServiceLocked`` on polls, lost answers after the backup
started, operations that fail with an internal error) and host processes are killed (``SIGKILL``) and replaced.
Some instances cannot be backed up at all (a v2 tier): their jobs must fail and be announced. When the faults
stop, the soak waits until every job has ended and its follow-ups are done, then counts what must be zero:

- jobs lost: planned jobs that never ended, or ended otherwise than their operation (a backable instance's
  job not ``Succeeded``, an unbackupable one's not ``Failed``);
- operations started twice: a backup operation started for a blob while another for it ran or had succeeded;
- backups no job labelled: blobs in the container without apim-dr's tags, or of a job that did not succeed;
- manifests missing: succeeded backups without ``{blob}.manifest.json``;
- announcements repeated: the same failure announced under two IDs, or a failure never announced. Repeats with
  the same ID (a host killed between the webhook's answer and the flag) are allowed by the at-least-once
  promise and counted apart: a receiver drops them by ID.

The watchdog's real code runs in this process every few seconds once the faults stop, with its clock three
minutes ahead (what a deployment waits for its five-minute timer and two-minute grace), so a message lost with a
killed host is re-sent within the soak instead of minutes later.

``python -m bench.chaos [--seed 7] [--instances 300] [--slots 3] [--fault-seconds 180] [--hosts 3] [--kills 2]``.
The suite runs a short version (``tests/e2e/test_chaos.py``).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "apim-contoso-prod"
UNBACKUPABLE_TEMPLATE = "apim-contoso-v2"
CONTAINER = "apim-backups"
SLOT_SECONDS = 5  # BACKUP_SCHEDULE fires every 5 s, so slots a few seconds apart are distinct slots
WATCHDOG_LEAD = timedelta(minutes=3)


@dataclass
class SoakPlan:
    """What the soak does, all from ``seed``."""

    seed: int
    backable: list[str]  # service names whose backups must succeed
    unbackupable: list[str]  # service names whose backups must fail (and be announced)
    slots: int = 3
    slot_gap: float = 6.0  # seconds between two planner firings
    fault_seconds: float = 20.0
    fault_rate: float = 2.0  # faults injected per second
    hosts: int = 2
    kills: int = 1
    settle_timeout: float = 120.0
    queue_lease: float = 4.0


@dataclass
class SoakReport:
    expected_jobs: int
    jobs: int = 0
    succeeded: int = 0
    failed_as_expected: int = 0
    jobs_lost: list[str] = field(default_factory=list)
    operations: int = 0
    operations_started_twice: list[str] = field(default_factory=list)
    backups_unlabelled: list[str] = field(default_factory=list)
    manifests_missing: list[str] = field(default_factory=list)
    announcements: int = 0
    repeats_dropped_by_id: int = 0
    announcements_repeated: list[str] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    retried_jobs: int = 0
    adopted: int = 0
    seconds: float = 0.0

    @property
    def zeros(self) -> dict[str, int]:
        return {"jobs lost": len(self.jobs_lost), "operations started twice": len(self.operations_started_twice),
                "backups no job labelled": len(self.backups_unlabelled),
                "manifests missing": len(self.manifests_missing),
                "announcements repeated": len(self.announcements_repeated)}

    def lines(self) -> list[str]:
        out = [f"jobs: {self.jobs} of {self.expected_jobs} planned ({self.succeeded} succeeded, "
               f"{self.failed_as_expected} failed as they must), {self.retried_jobs} needed more than one "
               f"start or operation, {self.adopted} adopted after they had ended",
               f"operations run: {self.operations}; faults injected: {sum(self.faults.values())} "
               f"({', '.join(f'{k} {v}' for k, v in sorted(self.faults.items()))}); hosts killed: {self.kills}",
               f"announcements: {self.announcements} deliveries, {self.repeats_dropped_by_id} repeats with the same ID "
               "(at least once; dropped by ID)"]
        out += [f"{name}: {count}" for name, count in self.zeros.items()]
        for name, items in (("jobs lost", self.jobs_lost), ("operations started twice", self.operations_started_twice),
                            ("backups no job labelled", self.backups_unlabelled),
                            ("manifests missing", self.manifests_missing),
                            ("announcements repeated", self.announcements_repeated)):
            out += [f"  {name}: {item}" for item in items[:10]]
        out.append(f"soak took {self.seconds:.1f} s")
        return out


class _AheadClock:
    """The real clock, ``lead`` ahead: the watchdog as it would run a few minutes later."""

    def __init__(self, lead: timedelta) -> None:
        self._lead = lead

    def now(self) -> datetime:
        return datetime.now(UTC) + self._lead


class _Hosts:
    """Host stand-ins in their own processes; one killed (SIGKILL) and replaced on demand."""

    def __init__(self, settings: dict[str, str], workdir: Path, count: int, queue_lease: float) -> None:
        self._settings, self._workdir, self._lease = settings, workdir, queue_lease
        self._started = 0
        self.live: list[Any] = []
        for _ in range(count):
            self.add()

    def add(self) -> None:
        from emulator.funchost import FunctionsHostProcess

        self._started += 1
        host = FunctionsHostProcess(PROJECT_ROOT, self._settings, queue_lease=self._lease,
                                    workdir=self._workdir / f"host-{self._started}",
                                    instance_id=f"chaos-{self._started}")
        host.start(timeout=60)
        self.live.append(host)

    def kill(self, rng: random.Random) -> None:
        victim = self.live.pop(rng.randrange(len(self.live)))
        victim.kill()
        self.add()

    def fire(self, function: str) -> None:
        """Run a timer function now through a live host's admin API (as the portal's "Run" does)."""
        import requests

        host = self.live[0]
        response = requests.post(f"{host.http_url}/admin/functions/{function}", json={"input": ""}, timeout=120,
                                 headers={"x-functions-key": host.master_key})
        response.raise_for_status()

    def stop(self) -> None:
        for host in self.live:
            host.stop()
        self.live.clear()


def _inject(admin: Any, rng: random.Random, plan: SoakPlan, op_failures: set[str], faults: Counter[str]) -> None:
    """One random fault on a random instance's starts or polls."""
    service = rng.choice(plan.backable + plan.unbackupable)
    kind = rng.choice(["start-5xx", "start-429", "start-lost", "start-lost-503", "poll-locked", "poll-5xx",
                       "poll-429", "op-internal"])
    if kind == "start-5xx":
        admin.set_fault("http", on="start", service=service, status=rng.choice([500, 503]), count=1)
    elif kind == "start-429":
        admin.set_fault("throttle", on="start", service=service, count=1, retry_after=1)
    elif kind == "start-lost":
        admin.drop_answer("start", then="close", service=service)
    elif kind == "start-lost-503":
        admin.drop_answer("start", then=503, service=service)
    elif kind == "poll-locked":
        admin.set_fault("http", on="poll", service=service, status=409, code="ServiceLocked", count=rng.randint(1, 4),
                        message=f"The API Service {service} is transitioning at this time. Please try the request "
                                "again later.")
    elif kind == "poll-5xx":
        admin.set_fault("http", on="poll", service=service, status=rng.choice([500, 502, 503]),
                        count=rng.randint(1, 3))
    elif kind == "poll-429":
        admin.set_fault("throttle", on="poll", service=service, count=rng.randint(1, 2), retry_after=1)
    else:
        if service in op_failures or service in plan.unbackupable:
            return  # at most one failed operation per instance: fewer than any job's attempts
        op_failures.add(service)
        admin.set_fault("op_failure", on="backup", service=service, status=500, code="InternalServerError",
                        message="Encountered an internal server error.", count=1)
    faults[kind] += 1


def run_soak(stack: Any, webhook: Any, plan: SoakPlan, *, workdir: Path,
             progress: Callable[[str], None] = lambda _: None) -> SoakReport:
    """The soak on a running local Azure (``stack``: :class:`emulator.stack.LocalAzure`) and webhook receiver."""
    from dr_core.context import DrContext
    from dr_core.kernel.settings import load_settings

    rng = random.Random(plan.seed)
    instances = [stack.resource_id(name) for name in plan.backable + plan.unbackupable]
    settings = stack.app_settings(instances, extra={
        "BACKUP_SCHEDULE": f"*/{SLOT_SECONDS} * * * * *",
        "APIM_DR_WEBHOOK_URL": webhook.url,
        "APIM_DR_MAX_POLL_DELAY_SECONDS": "2",
        "APIM_DR_START_LEASE_SECONDS": "3",
        "APIM_DR_ATTEMPT_BACKOFF_SECONDS": "1",
        # Native backups only: the soak is about operations (a tier without backup must fail and be announced);
        # configuration snapshots are jobs of many reads, with a soak of their own to come.
        "APIM_DR_RECOVERY": "native",
    })
    ctx = DrContext.from_settings(load_settings(settings), clock=_AheadClock(WATCHDOG_LEAD))
    report = SoakReport(expected_jobs=len(instances) * plan.slots)
    started = time.monotonic()
    hosts = _Hosts(settings, workdir, plan.hosts, plan.queue_lease)
    try:
        _drive(stack.apim.admin, hosts, plan, rng, report=report, progress=progress)
        progress(f"faults stopped at {time.monotonic() - started:.1f} s; settling")
        _settle(stack, ctx, plan, report)
    finally:
        hosts.stop()
    report.seconds = time.monotonic() - started
    _count_jobs(_backup_jobs(stack), plan, report)
    _count_operations(stack, report)
    _count_blobs(stack, _backup_jobs(stack), report)
    _count_announcements(webhook, _backup_jobs(stack), report)
    return report


def _drive(admin: Any, hosts: _Hosts, plan: SoakPlan, rng: random.Random, *, report: SoakReport,
           progress: Callable[[str], None]) -> None:
    """The fault window: faults injected from a thread, slots planned and hosts killed at seeded moments."""
    started = time.monotonic()
    stop_faults = threading.Event()
    op_failures: set[str] = set()
    fault_rng = random.Random(rng.random())

    def faults() -> None:
        while not stop_faults.wait(1.0 / plan.fault_rate):
            _inject(admin, fault_rng, plan, op_failures, report.faults)

    injector = threading.Thread(target=faults, name="chaos-faults", daemon=True)
    injector.start()
    try:
        kill_at = sorted(rng.uniform(1.0, plan.fault_seconds) for _ in range(plan.kills))
        events = sorted([(i * plan.slot_gap, "plan") for i in range(plan.slots)] + [(t, "kill") for t in kill_at])
        for at, what in events:
            time.sleep(max(0.0, at - (time.monotonic() - started)))
            if what == "plan":
                hosts.fire("plan_scheduled_backups")
            else:
                hosts.kill(rng)
                report.kills += 1
            progress(f"{'slot planned' if what == 'plan' else 'a host killed'} at {time.monotonic() - started:.1f} s")
        time.sleep(max(0.0, plan.fault_seconds - (time.monotonic() - started)))
    finally:
        stop_faults.set()
        injector.join()
        admin.clear_faults()


def _settle(stack: Any, ctx: Any, plan: SoakPlan, report: SoakReport) -> None:
    """Until every job has ended and its follow-ups are done; the watchdog's real code, a few minutes ahead."""
    from dr_core.jobs.watchdog import Watchdog

    watchdog = Watchdog(jobs=ctx.jobs, queue=ctx.queue, clock=ctx.clock)
    deadline = time.monotonic() + plan.settle_timeout
    for turn in itertools.count():
        jobs = _backup_jobs(stack)
        if len(jobs) >= report.expected_jobs and all(j.state.terminal and not j.follow_ups for j in jobs):
            return
        if time.monotonic() > deadline:
            return
        if turn % 3 == 2:
            watchdog.requeue_stalled()
        time.sleep(1.0)


def _backup_jobs(stack: Any) -> list[Any]:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableClient

    from dr_core.azure.tables import is_job_row, job_from_entity
    from dr_core.jobs.ids import JobKind

    table = TableClient.from_connection_string(stack.azurite.connection_string(), "apimdrjobs")
    try:
        return [j for j in (job_from_entity(e) for e in table.list_entities() if is_job_row(e))
                if j.kind is JobKind.BACKUP]
    except ResourceNotFoundError:
        return []


def _count_jobs(jobs: list[Any], plan: SoakPlan, report: SoakReport) -> None:
    """Every planned job ended as its operation did: backable ones Succeeded, the others Failed."""
    from dr_core.kernel.phases import JobState

    report.jobs = len(jobs)
    unbackupable = set(plan.unbackupable)
    per_service = Counter(j.service_name for j in jobs)
    for name in plan.backable + plan.unbackupable:
        if per_service[name] < plan.slots:
            report.jobs_lost.append(f"{name}: {plan.slots - per_service[name]} slot(s) without a job")
    for job in jobs:
        must = JobState.FAILED if job.service_name in unbackupable else JobState.SUCCEEDED
        if job.state is not must or job.follow_ups:
            report.jobs_lost.append(f"{job.job_id}: {job.state.value} (must be {must.value}), follow-ups "
                                    f"{job.follow_ups}, {job.error_code}: {(job.error_message or '')[:120]}")
        report.succeeded += job.state is JobState.SUCCEEDED
        report.failed_as_expected += job.state is JobState.FAILED and job.service_name in unbackupable
        report.retried_jobs += len(job.attempts) > 1 or job.start_attempts > 1
        report.adopted += job.state is JobState.SUCCEEDED and bool(job.error_code)


def _count_operations(stack: Any, report: SoakReport) -> None:
    """Per blob, a backup operation started while another for it ran or after one had succeeded is a duplicate."""
    operations = [op for op in stack.apim.admin.operations() if op.get("kind") == "backup"]
    report.operations = len(operations)
    for name, ops in _group(operations, lambda op: op["parameters"]["backupName"]).items():
        ops.sort(key=lambda op: float(op["startedAt"]))
        for earlier, later in itertools.pairwise(ops):
            ended = earlier.get("completedAt")
            if earlier["status"] == "Succeeded" or ended is None or float(later["startedAt"]) < float(ended):
                report.operations_started_twice.append(f"{name}: {len(ops)} operations")
                break


def _count_blobs(stack: Any, jobs: list[Any], report: SoakReport) -> None:
    """Every backup blob labelled by the job that succeeded with it; every succeeded backup with its manifest."""
    from azure.storage.blob import BlobServiceClient

    from dr_core.kernel.phases import JobState

    by_blob = {a.blob_name: j for j in jobs for a in j.attempts} | {j.blob_name: j for j in jobs}
    storage = stack.front if stack.front is not None else stack.azurite
    container = BlobServiceClient.from_connection_string(storage.connection_string(stack.backup_account)) \
        .get_container_client(CONTAINER)
    names = {b.name for b in container.list_blobs()} if container.exists() else set()
    for name in sorted(n for n in names if not n.endswith(".manifest.json")):
        tags = container.get_blob_client(name).get_blob_tags()
        job = by_blob.get(name)
        labelled = job is not None and tags.get("apimdr_state") == "succeeded" and tags.get("apimdr_job") == \
            job.job_id and job.state is JobState.SUCCEEDED and job.blob_name == name
        if not labelled:
            report.backups_unlabelled.append(f"{name}: tags {sorted(tags)}, job {job.state.value if job else None}")
    report.manifests_missing += [j.blob_name for j in jobs
                                 if j.state is JobState.SUCCEEDED and j.blob_name + ".manifest.json" not in names]


def _count_announcements(webhook: Any, jobs: list[Any], report: SoakReport) -> None:
    """Each failed job announced, under one ID (repeats of it are at least once); no succeeded job announced."""
    from dr_core.kernel.phases import JobState

    deliveries = [(h.get("ce-id"), b) for h, b in zip(webhook.headers, webhook.received, strict=True)
                  if isinstance(b.get("apimDr"), dict) and b["apimDr"].get("jobId")]
    report.announcements = len(deliveries)
    ids_per_job: dict[str, set[str | None]] = {}
    for ident, body in deliveries:
        ids_per_job.setdefault(body["apimDr"]["jobId"], set()).add(ident)
    report.repeats_dropped_by_id = len(deliveries) - sum(len(ids) for ids in ids_per_job.values())
    report.announcements_repeated += [f"{job_id}: IDs {sorted(map(str, ids))}" for job_id, ids in ids_per_job.items()
                                      if len(ids) > 1 or None in ids]
    for job in jobs:
        if job.state is JobState.FAILED and job.job_id not in ids_per_job:
            report.announcements_repeated.append(f"{job.job_id}: failed and never announced")
        if job.state is JobState.SUCCEEDED and job.job_id in ids_per_job and not job.error_code:
            report.announcements_repeated.append(f"{job.job_id}: succeeded but announced")


def _group(items: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], str]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def soak_seed(backable: int, unbackupable: int) -> dict[str, Any]:
    """The example seed with ``backable`` Standard and ``unbackupable`` StandardV2 instances."""
    from emulator.stack import EXAMPLE_SEED

    seed = json.loads(EXAMPLE_SEED.read_text())
    templates = {s["name"]: s for s in seed["services"]}
    services = []
    for prefix, template, count in (("apim-chaos", TEMPLATE, backable),
                                    ("apim-chaos-v2", UNBACKUPABLE_TEMPLATE, unbackupable)):
        for i in range(count):
            svc = copy.deepcopy(templates[template])
            svc["name"] = f"{prefix}-{i:04d}"
            svc.pop("hostnameConfigurations", None)
            svc["tags"] = {"environment": "chaos"}
            services.append(svc)
    seed["services"] = services
    return seed


def main(*, seed: int, instances: int, unbackupable: int, slots: int, fault_seconds: float, hosts: int,
         kills: int) -> int:
    from emulator.stack import LocalAzure
    from emulator.webhook import Webhook

    work = Path(tempfile.mkdtemp(prefix="apimdr-chaos-"))
    hook = Webhook()
    with LocalAzure(work / "azure", seed=soak_seed(instances, unbackupable), retry_after=1, op_duration=3.0,
                    blob_front=True) as local:
        assert local.tls is not None
        os.environ["REQUESTS_CA_BUNDLE"] = str(local.tls.ca_bundle)
        plan = SoakPlan(seed=seed, backable=[f"apim-chaos-{i:04d}" for i in range(instances)],
                        unbackupable=[f"apim-chaos-v2-{i:04d}" for i in range(unbackupable)], slots=slots,
                        slot_gap=max(SLOT_SECONDS + 1.0, fault_seconds / max(1, slots)),
                        fault_seconds=fault_seconds, fault_rate=max(2.0, instances / 30), hosts=hosts, kills=kills,
                        settle_timeout=max(300.0, instances * slots * 0.5))
        report = run_soak(local, hook, plan, workdir=work, progress=lambda line: print("  ..", line, flush=True))
    hook.stop()
    print(f"== chaos soak: seed {seed}, {instances} + {unbackupable} instances, {slots} slots, {fault_seconds:.0f} s "
          f"of faults, {hosts} hosts, {kills} killed ==")
    for line in report.lines():
        print("  " + line)
    print("  goal: each of the five counts above is 0")
    return 0 if not any(report.zeros.values()) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--unbackupable", type=int, default=10)
    parser.add_argument("--slots", type=int, default=3)
    parser.add_argument("--fault-seconds", type=float, default=180.0)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--kills", type=int, default=2)
    args = parser.parse_args()
    raise SystemExit(main(seed=args.seed, instances=args.instances, unbackupable=args.unbackupable, slots=args.slots,
                          fault_seconds=args.fault_seconds, hosts=args.hosts, kills=args.kills))
