"""azure-core's exceptions become apim-dr's own errors here, and nowhere else.

One table (:data:`_TRANSLATIONS`) says what each azure-core exception becomes, for a storage call or
an ARM call; :func:`translate` applies it. Each adapter class is decorated with :func:`translates`,
so every public method of every adapter runs inside the translation: no ``ServiceRequestError``,
``ClientAuthenticationError`` or stray ``HttpResponseError`` reaches a use case, an HTTP answer or
the CLI. Each becomes an :class:`~dr_core.kernel.errors.AzureUnavailableError` or an
:class:`~dr_core.kernel.errors.ArmCallError` that says what failed and what to do. Exceptions an
adapter expects (``ResourceNotFoundError`` for "no such blob", ``ResourceExistsError`` for a lost
race) are caught inside its methods first and never get here.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from dr_core.kernel.errors import ArmCallError, ArmError, AzureUnavailableError, DrError, NoAnswerError, parse_arm_error

__all__ = ["AzureCall", "Service", "arm_error_from", "retry_after_of", "translate", "translated", "translates"]

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


class Service(StrEnum):
    STORAGE = "storage"
    ARM = "arm"


@dataclass(frozen=True)
class AzureCall:
    """The call that failed: which service, a few words naming it, and whether it must never be sent twice."""

    service: Service
    what: str
    sent_once: bool = False


@dataclass(frozen=True)
class _Translation:
    error: type[AzureError]
    service: Service | None  # None: either
    applies: Callable[[Any, AzureCall], bool]
    build: Callable[[Any, AzureCall], DrError]


def _always(_: Any, __: AzureCall) -> bool:
    return True


def _no_response(e: Any, _: AzureCall) -> bool:
    # azure-core raises ClientAuthenticationError both for a token that could not be got (no response) and
    # for a 401 from the service; the first is an outage of the identity, not a refusal.
    return getattr(e, "response", None) is None


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


def _unavailable(code: str, message: Callable[[Any, AzureCall], str], remediation: str, *,
                 retry_after: bool = False) -> Callable[[Any, AzureCall], DrError]:
    def build(e: Any, call: AzureCall) -> DrError:
        return AzureUnavailableError(f"{call.what}: {message(e, call)}", code=code, remediation=remediation,
                                     retry_after=retry_after_of(e.response) if retry_after else None)
    return build


def _refused_by_arm(e: Any, _: AzureCall) -> DrError:
    return ArmCallError(arm_error_from(e))


def _no_answer(e: Any, call: AzureCall) -> DrError:
    return NoAnswerError(f"{call.what}: the request was sent but no answer came back ({_short(e)}); ARM may have "
                         "accepted it", remediation=_ARM_UNREACHABLE)


# What each azure-core exception becomes; the first row that matches wins (specific before generic).
_TRANSLATIONS: tuple[_Translation, ...] = (
    _Translation(ClientAuthenticationError, None, _no_response, _unavailable(
        "TokenUnavailable", lambda e, _: f"no token for the app's identity: {_short(e)}", _TOKEN_FAILED)),
    _Translation(ClientAuthenticationError, Service.STORAGE, _always, _unavailable(
        "StorageAuthenticationFailed", lambda e, _: f"storage refused the credentials ({e.status_code})",
        _STORAGE_REMEDIATION)),
    _Translation(HttpResponseError, Service.STORAGE, _always, _unavailable(
        "StorageRequestFailed",
        lambda e, _: f"storage answered {e.status_code} {getattr(e, 'error_code', None) or f'Http{e.status_code}'}",
        _STORAGE_REMEDIATION, retry_after=True)),
    _Translation(HttpResponseError, Service.ARM, _always, _refused_by_arm),  # ClientAuthenticationError too
    _Translation(ServiceResponseError, Service.ARM, lambda _, call: call.sent_once, _no_answer),
    _Translation(ServiceRequestError, Service.STORAGE, _always, _unavailable(
        "StorageUnreachable", lambda e, _: f"the storage account could not be reached: {_short(e)}",
        _STORAGE_REMEDIATION)),
    _Translation(ServiceResponseError, Service.STORAGE, _always, _unavailable(
        "StorageUnreachable", lambda e, _: f"the storage account could not be reached: {_short(e)}",
        _STORAGE_REMEDIATION)),
    _Translation(ServiceRequestError, Service.ARM, _always, _unavailable(
        "ArmUnreachable", lambda e, _: _short(e), _ARM_UNREACHABLE)),
    _Translation(ServiceResponseError, Service.ARM, _always, _unavailable(
        "ArmUnreachable", lambda e, _: _short(e), _ARM_UNREACHABLE)),
    _Translation(AzureError, Service.STORAGE, _always, _unavailable(
        "StorageError", lambda e, _: f"{type(e).__name__}: {_short(e)}", _STORAGE_REMEDIATION)),
    _Translation(AzureError, Service.ARM, _always, _unavailable(
        "ArmError", lambda e, _: f"{type(e).__name__}: {_short(e)}", _ARM_UNREACHABLE)),
)


def translate(error: AzureError, call: AzureCall) -> DrError:
    """apim-dr's error for an azure-core exception raised by ``call`` (the table above)."""
    for row in _TRANSLATIONS:
        if isinstance(error, row.error) and row.service in (None, call.service) and row.applies(error, call):
            return row.build(error, call)
    raise AssertionError("the last rows match every AzureError")  # pragma: no cover


@contextlib.contextmanager
def translated(call: AzureCall) -> Iterator[None]:
    """Run SDK calls outside an adapter's methods (setting up the app's storage); failures are translated."""
    try:
        yield
    except DrError:
        raise
    except AzureError as e:
        raise translate(e, call) from e


C = TypeVar("C", bound=type)


def translates(service: Service, *, sent_once: Iterable[str] = ()) -> Callable[[C], C]:
    """Class decorator of an adapter: each public method's azure-core errors are translated.

    The adapter names what it talks to in ``self.what`` (``"the jobs table"``), or per call with a
    method ``_describe(self, method, args) -> str``. Methods named in ``sent_once`` send writes that
    must not be repeated: an answer lost after the request went out becomes
    :class:`~dr_core.kernel.errors.NoAnswerError`.
    """
    once = frozenset(sent_once)

    def decorate(cls: C) -> C:
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and inspect.isfunction(member):
                setattr(cls, name, _translating(member, service, sent_once=name in once))
        return cls

    return decorate


def _translating(method: Callable[..., Any], service: Service, *, sent_once: bool) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except DrError:
            raise
        except AzureError as e:
            describe = getattr(self, "_describe", None)
            what = describe(method.__name__, args) if describe is not None else self.what
            raise translate(e, AzureCall(service, what, sent_once)) from e

    return wrapper


def retry_after_of(response: Any) -> float | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds > 0 else None


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
