"""apim-dr's errors: one table to HTTP statuses and CLI exit codes, ARM's error bodies, remediation by code."""

from __future__ import annotations

import json

import pytest

from dr_core.api.http import guarded
from dr_core.kernel.errors import (
    EXIT_CONFIG,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ArmCallError,
    ArmError,
    AzureUnavailableError,
    ConfigurationError,
    DrError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    exit_code,
    http_status,
    parse_arm_error,
    remediation_for,
)
from dr_core.kernel.settings import SettingsError


@pytest.mark.parametrize(("error", "status", "code"), [
    (InvalidRequestError("x"), 400, EXIT_USAGE),
    (PayloadTooLargeError("x"), 413, EXIT_USAGE),
    (NotFoundError("x"), 404, EXIT_NOT_FOUND),
    (ConfigurationError("x"), 503, EXIT_CONFIG),
    (SettingsError(["APIM_DR_X is bad"]), 503, EXIT_CONFIG),
    (AzureUnavailableError("x"), 503, EXIT_UNAVAILABLE),
    (ArmCallError(ArmError("AuthorizationFailed", "no", 403)), 502, EXIT_UNAVAILABLE),
])
def test_one_table_maps_errors_to_statuses_and_exit_codes(error: DrError, status: int, code: int) -> None:
    assert (http_status(error), exit_code(error)) == (status, code)
    body = guarded(lambda: (_ for _ in ()).throw(error)).body
    assert isinstance(body, dict) and body["error"]["code"] == error.error_code


def test_unexpected_exceptions_answer_an_opaque_500() -> None:
    response = guarded(lambda: (_ for _ in ()).throw(KeyError("secret-value")))
    assert response.status == 500 and "secret-value" not in response.json_bytes().decode()


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
