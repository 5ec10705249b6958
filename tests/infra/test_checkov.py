"""checkov's Bicep policies on infra/: nothing unparsed, nothing failed, every skip explained in place.

checkov 3.3.30 pins pycep-parser 0.5.1, which conflicts with the 0.7.1 of the main venv, so it
lives in .venv-checkov (``make tools``). A file checkov cannot parse is silently left out and the
exit code stays 0, hence the explicit ``parsing_errors`` assertions.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from tests.infra.bicep_model import INFRA, ROOT

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
SKIP_COMMENT = re.compile(r"//\s*checkov:skip=(CKV2?_[A-Z0-9_]+):\s*(\S.*)$")
MIN_REASON_LENGTH = 30


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.skip(f"{CHECKOV.relative_to(ROOT)} not found: run `make tools` to install checkov 3.3.30 "
                    "into its own venv (CI does this before the tests)")
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_LOG_LEVEL": "ERROR"}
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(INFRA), "--framework", "bicep", "-o", "json", "--skip-download"],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, check=False,
    )
    assert proc.returncode in (0, 1), f"checkov crashed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    data = json.loads(proc.stdout)
    if isinstance(data, list):  # one entry per framework when several ran
        data = next(d for d in data if d.get("check_type") == "bicep")
    return data


def _skip_comments() -> dict[tuple[str, str], str]:
    """Every ``// checkov:skip=ID: reason`` in infra/, keyed by (file relative to infra/, check ID)."""
    found = {}
    for path in sorted(INFRA.rglob("*.bicep")):
        for line in path.read_text().splitlines():
            match = SKIP_COMMENT.search(line)
            if match:
                found[(path.relative_to(INFRA).as_posix(), match.group(1))] = match.group(2).strip()
    return found


def test_checkov_parsed_every_file(report):
    assert report["summary"]["parsing_errors"] == 0, report["results"].get("parsing_errors")
    assert report["results"].get("parsing_errors", []) == []
    checked_files = {c["file_path"].lstrip("/") for key in ("passed_checks", "failed_checks", "skipped_checks")
                     for c in report["results"][key]}
    # The files that hold the resources checkov has policies for must all have been read.
    assert {"app/function-app.bicep", "storage/runtime-storage.bicep", "storage/backup-storage.bicep",
            "rbac/custom-roles.bicep"} <= checked_files


def test_no_custom_role_is_an_owner_role(report):
    """CKV_AZURE_39 (no custom role with `*` actions over a subscription) on every custom role: the operator role is
    assignable in other subscriptions, and checkov must have looked at it. Which scopes each layout makes it
    assignable at is evaluated in test_layouts.py: checkov reads the templates, not a layout's values."""
    results = {c["resource"].rpartition(".")[2]: key for key in ("passed_checks", "failed_checks")
               for c in report["results"][key] if c["check_id"] == "CKV_AZURE_39"}
    from tests.infra.bicep_model import CUSTOM_ROLES, Infra, resources

    expected = set(resources(Infra.from_disk().tree(CUSTOM_ROLES), "Microsoft.Authorization/roleDefinitions"))
    assert {"operatorRole", "configRestoreRole", "backupRetentionRole"} <= expected  # the model reads them all
    assert results == dict.fromkeys(expected, "passed_checks")


def test_checkov_checked_something(report):
    assert report["summary"]["resource_count"] > 0
    assert report["summary"]["passed"] > 0


def test_no_failed_checks(report):
    failed = [f"{c['check_id']} {c['check_name']} ({c['file_path']}: {c['resource']})"
              for c in report["results"]["failed_checks"]]
    assert report["summary"]["failed"] == 0, "\n".join(failed)


def test_every_skip_has_a_reason_next_to_the_resource(report):
    comments = _skip_comments()
    for skipped in report["results"]["skipped_checks"]:
        path = skipped["file_path"].lstrip("/")
        check_id = skipped["check_id"]
        reason = comments.get((path, check_id))
        assert reason, f"{check_id} skipped in {path} without a `// checkov:skip={check_id}: reason` comment"
        assert len(reason) >= MIN_REASON_LENGTH, f"{check_id} in {path}: the reason is too short to explain anything"
        # The comment must sit inside the skipped resource's lines, not anywhere in the file.
        start, end = skipped["file_line_range"]
        lines = (INFRA / path).read_text().splitlines()[start - 1:end]
        assert any(f"checkov:skip={check_id}:" in line for line in lines), \
            f"{check_id}: the skip comment is not inside {skipped['resource']} ({path}:{start}-{end})"


def test_no_stale_skip_comments(report):
    used = {(c["file_path"].lstrip("/"), c["check_id"]) for c in report["results"]["skipped_checks"]}
    stale = sorted(set(_skip_comments()) - used)
    assert not stale, f"skip comments for checks that no longer fire (remove them): {stale}"
