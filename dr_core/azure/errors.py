"""azure-core's exceptions, turned into the app's own errors at the adapter edge.

The adapters (:mod:`dr_core.azure.tables`, :mod:`dr_core.azure.blobs`, :mod:`dr_core.jobs.messages`,
:mod:`dr_core.azure.arm`) wrap their SDK calls in :func:`storage_errors` or :func:`arm_errors`, so
no ``ServiceRequestError``, ``ClientAuthenticationError`` or stray ``HttpResponseError``
reaches a use case, an HTTP answer or the CLI: each becomes an :class:`AzureUnavailableError`
or :class:`ArmCallError` that says what failed and what to do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from dr_core.kernel.errors import ArmCallError, ArmError, AzureUnavailableError, DrError, NoAnswerError, parse_arm_error

__all__ = ["arm_error_from", "arm_errors", "retry_after_of", "storage_errors"]

_STORAGE_REMEDIATION = (
    "Check that the storage account is reachable from where apim-dr runs (firewall, private endpoint, DNS) and "
    "that the Function App's identity holds the data roles of docs/deploy.md; then retry."
)
_ARM_UNREACHABLE = (
    "Azure Resource Manager could not be reached. Check APIM_DR_ARM_ENDPOINT and the network path to it "
    "(proxy, DNS, firewall); then retry."
)
_TOKEN_FAILED = (
    "No token could be obtained for the app's identity. In Azure, check the Function App's managed identity and "
    "AZURE_CLIENT_ID; on an operator's machine, run `az login`."
)
_MAX_TEXT = 300


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


def retry_after_of(response: Any) -> float | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds > 0 else None


def _raise_if_no_token(what: str, e: Any) -> None:
    """azure-core raises ClientAuthenticationError both for a token that could not be got (no response)
    and for a 401 from the service; the first is an outage of the identity, not a refusal."""
    if getattr(e, "response", None) is None:
        raise AzureUnavailableError(f"{what}: no token for the app's identity: {_short(e)}",
                                    code="TokenUnavailable", remediation=_TOKEN_FAILED) from e


@contextlib.contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Run storage calls; their failures become :class:`AzureUnavailableError` naming ``what``."""
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except DrError:
        raise
    except ClientAuthenticationError as e:
        _raise_if_no_token(what, e)
        raise AzureUnavailableError(f"{what}: storage refused the credentials ({e.status_code})",
                                    code="StorageAuthenticationFailed", remediation=_STORAGE_REMEDIATION) from e
    except HttpResponseError as e:
        code = getattr(e, "error_code", None) or f"Http{e.status_code}"
        raise AzureUnavailableError(f"{what}: storage answered {e.status_code} {code}", code="StorageRequestFailed",
                                    remediation=_STORAGE_REMEDIATION, retry_after=retry_after_of(e.response)) from e
    except (ServiceRequestError, ServiceResponseError) as e:
        raise AzureUnavailableError(f"{what}: the storage account could not be reached: {_short(e)}",
                                    code="StorageUnreachable", remediation=_STORAGE_REMEDIATION) from e
    except AzureError as e:
        raise AzureUnavailableError(f"{what}: {type(e).__name__}: {_short(e)}", code="StorageError",
                                    remediation=_STORAGE_REMEDIATION) from e


@contextlib.contextmanager
def arm_errors(what: str, *, sent_once: bool = False) -> Iterator[None]:
    """Run ARM calls: refusals become :class:`ArmCallError`, everything else :class:`AzureUnavailableError`.

    ``sent_once``: a write that must not be repeated. A connection that broke after the request
    went out (``ServiceResponseError``) then becomes :class:`NoAnswerError`: ARM may have
    accepted it.
    """
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except DrError:
        raise
    except ClientAuthenticationError as e:
        _raise_if_no_token(what, e)
        raise ArmCallError(arm_error_from(e)) from e
    except HttpResponseError as e:
        raise ArmCallError(arm_error_from(e)) from e
    except ServiceResponseError as e:
        if sent_once:
            raise NoAnswerError(f"{what}: the request was sent but no answer came back ({_short(e)}); ARM may "
                                "have accepted it", remediation=_ARM_UNREACHABLE) from e
        raise AzureUnavailableError(f"{what}: {_short(e)}", code="ArmUnreachable",
                                    remediation=_ARM_UNREACHABLE) from e
    except ServiceRequestError as e:
        raise AzureUnavailableError(f"{what}: {_short(e)}", code="ArmUnreachable", remediation=_ARM_UNREACHABLE) from e
    except AzureError as e:
        raise AzureUnavailableError(f"{what}: {type(e).__name__}: {_short(e)}", code="ArmError",
                                    remediation=_ARM_UNREACHABLE) from e


def arm_error_from(e: Any) -> ArmError:
    """ARM's error out of an ``HttpResponseError``: the body if readable, else the parsed model."""
    response = getattr(e, "response", None)
    status = getattr(e, "status_code", None) or getattr(response, "status_code", None)
    retry_after = retry_after_of(response)
    body: bytes | None = None
    if response is not None:
        try:
            body = response.body() if hasattr(response, "body") else None
        except Exception:  # the body may already be consumed; the parsed model below still has it
            body = None
    if body:
        return parse_arm_error(int(status or 0), body, retry_after=retry_after)
    model = getattr(e, "error", None)
    code = getattr(model, "code", None) or type(e).__name__
    message = getattr(model, "message", None) or str(e)
    return ArmError(code=str(code), message=str(message)[:2000], status=int(status) if status else None,
                    retry_after=retry_after)
