import json

import pytest

from dr_core.jobs.messages import InvalidMessageError, WorkMessage
from dr_core.kernel.errors import parse_arm_error, remediation_for

JOB = "backup-20261122T020000Z-apim-one-0123abcd"


def test_apim_error_shape_is_parsed():
    body = json.dumps({"error": {"code": "ServiceLocked", "message": "The API Service x is transitioning",
                                 "details": None, "innerError": None}})
    err = parse_arm_error(409, body.encode())
    assert (err.code, err.status, err.retryable) == ("ServiceLocked", 409, True)


def test_non_json_error_bodies_do_not_break_parsing():
    err = parse_arm_error(502, b"<html>bad gateway</html>")
    assert err.code == "BadGateway" and "bad gateway" in err.message and err.retryable
    assert parse_arm_error(500, b"").message == "HTTP 500 without a body"


@pytest.mark.parametrize(("code", "message", "fragment"), [
    ("RestoreFailed", "Cannot restore: current SKU is 'Premium', backup SKU is 'Standard'", "tier"),
    ("RestoreFailed", "Cannot restore: backup expired", "30 days"),
    ("InvalidParameters", "Requested value 'GET,HEAD' was not found.\r\nParameter name: backupStorageAccount", "CORS"),
    ("MethodNotAllowedInPricingTier", "", "Developer, Basic, Standard and Premium"),
    ("AuthorizationFailed", "does not have authorization", "APIM DR Operator"),
    ("InvalidParameters", "System assigned managed identity is not enabled on API Management service 'x'.",
     "Enable it"),
    ("BackupFailed", "the system-assigned managed identity ... is not authorized (403 AuthorizationPermissionMismatch)",
     "Storage Blob Data"),
    ("SomethingNew", "", "activity log"),
])
def test_remediation_table(code, message, fragment):
    assert fragment in remediation_for(code, message)


def test_messages_round_trip():
    for msg in (WorkMessage("start", job=JOB), WorkMessage("poll", job=JOB, seq=3),
                WorkMessage("fanout", jobs=(JOB, JOB.replace("apim-one", "apim-two")))):
        assert WorkMessage.decode(msg.encode()) == msg


@pytest.mark.parametrize("text", [
    "", "not json", "[]", f'{{"v": 2, "op": "start", "job": "{JOB}"}}', f'{{"v": 1, "op": "delete", "job": "{JOB}"}}',
    '{"v": 1, "op": "start", "job": "../../etc"}', f'{{"v": 1, "op": "poll", "job": "{JOB}", "seq": -1}}',
    f'{{"v": 1, "op": "poll", "job": "{JOB}", "seq": true}}', '{"v": 1, "op": "fanout", "jobs": []}',
    "x" * 100_000,
])
def test_foreign_messages_are_refused(text):
    with pytest.raises(InvalidMessageError):
        WorkMessage.decode(text)
