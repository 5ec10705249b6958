"""Helpers for the blob front tests: clients through the front, fake Entra tokens, error checks.

(Module name is unique on purpose: pytest puts this folder on sys.path.)
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.transport import HttpResponse as TransportResponse
from azure.core.rest import HttpResponse as RestResponse
from azure.storage.blob import BlobServiceClient

from emulator.azurite import DEV_ACCOUNT
from emulator.blobfront import BlobFront

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
STORAGE_AUDIENCE = "https://storage.azure.com"

# The account every front test uses (Azurite's dev account). Imported from here, never from `conftest`:
# with several test folders on sys.path, `conftest` is whichever folder's was imported first (tests/emulator's
# has an ACCOUNT of its own), and a SAS signed for the wrong account fails as AuthorizationFailure.
ACCOUNT = DEV_ACCOUNT


def mint_token(oid: str, *, lifetime: int = 3600, aud: str = STORAGE_AUDIENCE) -> str:
    """An Entra-shaped access token (HS256 with a test key: Azurite's --oauth basic checks no signature)."""
    now = int(time.time())
    claims = {"aud": aud, "iss": f"https://sts.windows.net/{TENANT}/", "iat": now - 60, "nbf": now - 60,
              "exp": now + lifetime, "oid": oid, "tid": TENANT, "appid": str(uuid.uuid4())}
    return jwt.encode(claims, "blobfront-test-signing-key-long-enough-for-hs256", algorithm="HS256")


class FakeCredential:
    """A TokenCredential minting a token for ``oid`` (or returning a fixed token)."""

    def __init__(self, oid: str | None = None, *, token: str | None = None) -> None:
        self.oid = oid or str(uuid.uuid4())
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token or mint_token(self.oid), int(time.time()) + 3600)


def key_client(front: BlobFront, account: str) -> BlobServiceClient:
    """Shared Key through the front: a connection string whose BlobEndpoint is the front."""
    return BlobServiceClient.from_connection_string(front.connection_string(account),
                                                    connection_verify=str(front.tls.ca_bundle))


def token_client(front: BlobFront, account: str, oid: str | None = None, **kwargs: Any) -> BlobServiceClient:
    return BlobServiceClient(front.endpoint(account), credential=FakeCredential(oid, **kwargs),
                             connection_verify=str(front.tls.ca_bundle), retry_total=0)


def unique_container(prefix: str = "bf") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def storage_error(call: Any, *args: Any, **kwargs: Any) -> HttpResponseError:
    """Run ``call`` and return the storage error it raised (fails if it did not raise)."""
    with pytest.raises(HttpResponseError) as info:
        call(*args, **kwargs)
    return info.value


def assert_azure_error(exc: HttpResponseError, status: int, code: str, message: str | None = None) -> None:
    """Status, ``x-ms-error-code`` and Azure's XML body: <Error><Code/><Message>…RequestId:…Time:…</Message>."""
    assert exc.status_code == status, exc
    # The storage SDK sets ``error_code`` on the exception; azure-core's class does not declare it.
    assert getattr(exc, "error_code", None) == code, exc
    response = exc.response
    # azure-core types ``response`` as a protocol without headers; the SDK's transports give one of these.
    assert isinstance(response, (TransportResponse, RestResponse)), response
    assert response.headers.get("x-ms-error-code") == code
    if response.request.method != "HEAD":
        text = response.text()
        assert text.startswith('<?xml version="1.0" encoding="utf-8"?><Error><Code>' + code + "</Code><Message>")
        assert "\nRequestId:" in text and "\nTime:" in text
        if message is not None:
            assert f"<Message>{message}\nRequestId:" in text
        request_id = response.headers.get("x-ms-request-id")
        assert request_id and f"RequestId:{request_id}" in text
