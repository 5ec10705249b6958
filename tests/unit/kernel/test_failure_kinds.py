"""One table says what to do about an error and whether to try again (issue 21): not now, transient, permanent."""

from __future__ import annotations

import pytest

from dr_core.kernel.errors import RETRYABLE_CODES, ArmError, FailureKind, failure_kind, remediation_for

NOT_NOW, TRANSIENT, PERMANENT = FailureKind.NOT_NOW, FailureKind.TRANSIENT, FailureKind.PERMANENT


@pytest.mark.parametrize(("code", "message", "status", "kind"), [
    # "Not now": the call was refused, nothing ran.
    ("ServiceLocked", "The API Service x is transitioning at this time.", 409, NOT_NOW),
    ("SubscriptionRequestsThrottled", "Number of 'write' requests exceeded", 429, NOT_NOW),
    ("TooManyRequests", "", 429, NOT_NOW),
    # Transient: internal errors, time-outs, "try again later".
    ("InternalServerError", "Encountered an internal server error.", 500, TRANSIENT),
    ("ServiceUnavailable", "", 503, TRANSIENT),
    ("GatewayTimeout", "", 504, TRANSIENT),
    ("BackupFailed", "An unexpected error occurred. Please try again later.", 400, TRANSIENT),
    ("BackupFailed", "The operation timed out.", 400, TRANSIENT),
    ("SomethingNew", "", 502, TRANSIENT),  # no row: a 5xx is transient
    # Permanent: identity, tier, storage permissions, invalid parameters.
    ("BackupFailed", "the system-assigned managed identity ... is not authorized (403 "
     "AuthorizationPermissionMismatch)", 400, PERMANENT),
    ("BackupFailed", "storage account 'x' rejected the access key", 400, PERMANENT),
    ("MethodNotAllowedInPricingTier", "Method not allowed in Consumption pricing tier", 400, PERMANENT),
    ("InvalidParameters", "Invalid parameter: Value cannot be null.", 400, PERMANENT),
    ("AuthorizationFailed", "does not have authorization", 403, PERMANENT),
    ("RestoreFailed", "Cannot restore: current SKU is 'Premium', backup SKU is 'Standard'", 400, PERMANENT),
    ("SomethingNew", "", 400, PERMANENT),  # no row: a 4xx names something a new attempt repeats
    ("ServiceLocked", "", None, NOT_NOW),
])
def test_each_error_has_one_kind(code: str, message: str, status: int | None, kind: FailureKind) -> None:
    assert failure_kind(code, message, status) is kind
    error = ArmError(code, message, status)
    assert error.kind is kind and error.retryable is (kind is not PERMANENT)


def test_a_specific_permanent_row_wins_over_a_5xx_status() -> None:
    # An operation that failed for want of permission stays permanent, whatever status carried it.
    assert failure_kind("BackupFailed", "identity is not authorized", 500) is PERMANENT


def test_retryable_codes_come_from_the_same_table() -> None:
    assert {"ServiceLocked", "SubscriptionRequestsThrottled", "TooManyRequests", "RetryableErrorDueToAnotherOperation",
            "ServiceUnavailable", "InternalServerError", "GatewayTimeout", "BadGateway"} <= RETRYABLE_CODES
    assert "InvalidParameters" not in RETRYABLE_CODES and "BackupFailed" not in RETRYABLE_CODES


def test_transient_errors_say_that_backups_are_tried_again_and_restores_are_not() -> None:
    advice = remediation_for("InternalServerError")
    assert "new attempts" in advice and "maxAttempts" in advice and "restore is never repeated" in advice
