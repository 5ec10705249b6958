"""Local Azure in one object: Azurite + the APIM emulator, and the app settings that point at them.

Used by the demo and the end-to-end tests. Two ways for the app to reach its own storage:

- ``"connection-string"``: ``AzureWebJobsStorage`` holds an Azurite connection string (the quick
  local default);
- ``"identity"``: the identity-based ``AzureWebJobsStorage__*`` settings, with tokens from the
  emulator's managed-identity endpoint, accepted by Azurite's ``--oauth basic`` over HTTPS (the
  path the app takes in Azure).

ARM and the backup account are always reached with the managed identity.

``blob_front=True`` puts the blob front (emulator/blobfront) before Azurite's blob endpoint: the app's
``APIM_DR_BACKUP_BLOB_ENDPOINT`` and the APIM emulator's blob endpoint (APIM's own writes, with the
account key) both go through it, so immutability applies to everyone and RBAC to bearer tokens (once a
role table is set: ``front.admin.set_roles(...)``). The app's own runtime storage stays on Azurite.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .apim import ApimEmulator
from .apim.seed import load_seed, storage_accounts
from .azurite import Azurite
from .blobfront import BlobFront
from .certs import TlsFiles, ensure_tls_files

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SEED = Path(__file__).resolve().parent / "seed.example.json"

StorageMode = Literal["connection-string", "identity"]


@dataclass
class LocalAzure:
    workdir: Path
    seed: dict[str, Any] | Path = EXAMPLE_SEED
    retry_after: float = 1
    op_duration: float = 2.0
    tls: TlsFiles | None = None
    azurite: Azurite | None = None
    apim: ApimEmulator | None = None
    blob_front: bool = False
    front: BlobFront | None = None
    _seed: dict[str, Any] = field(default_factory=dict, repr=False)

    def start(self) -> LocalAzure:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._seed = load_seed(self.seed)
        if self.tls is None:  # a caller may share one CA across every local server it runs
            self.tls = ensure_tls_files(self.workdir / "tls")
        self.azurite = Azurite(self.workdir / "azurite", self.tls, accounts=storage_accounts(self.seed)).start()
        blob_endpoint = f"{self.azurite.scheme}://127.0.0.1:{self.azurite.blob_port}"
        try:
            if self.blob_front:
                self.front = BlobFront(blob_endpoint, self.tls, accounts=self.azurite.all_accounts()).start()
                blob_endpoint = self.front.url
            self.apim = ApimEmulator(self.workdir / "apim", self.seed, self.tls, blob_endpoint=blob_endpoint,
                                     retry_after=self.retry_after, op_duration=self.op_duration).start()
        except Exception:
            if self.front is not None:
                self.front.stop()
            self.azurite.stop()
            raise
        return self

    def stop(self) -> None:
        if self.apim is not None:
            self.apim.stop()
        if self.front is not None:
            self.front.stop()
        if self.azurite is not None:
            self.azurite.stop()

    def __enter__(self) -> LocalAzure:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- facts from the seed ---------------------------------------------------------------------
    @property
    def subscription_id(self) -> str:
        return str(self._seed["subscriptions"][0]["subscriptionId"])

    def resource_id(self, service_name: str) -> str:
        for svc in self._seed["services"]:
            if svc["name"] == service_name:
                return (f"/subscriptions/{svc.get('subscriptionId') or self.subscription_id}/resourceGroups/"
                        f"{svc['resourceGroup']}/providers/Microsoft.ApiManagement/service/{svc['name']}")
        raise KeyError(f"no service {service_name!r} in the seed")

    @property
    def backup_account(self) -> str:
        return str(self._seed["storageAccounts"][0]["name"])

    def backup_blob_endpoint(self) -> str:
        """The backup account's blob endpoint the app uses: the front's when there is one, else Azurite's."""
        assert self.azurite is not None
        if self.front is not None:
            return self.front.endpoint(self.backup_account)
        return self.azurite.endpoint("blob", self.backup_account)

    # -- the copy account (issue 21): the seed's second storage account, in another region ------------------
    @property
    def copy_account(self) -> str | None:
        """The seed's second storage account (the copy account), if it has one."""
        accounts = self._seed["storageAccounts"]
        return str(accounts[1]["name"]) if len(accounts) > 1 else None

    def copy_blob_endpoint(self) -> str:
        assert self.azurite is not None and self.copy_account is not None
        if self.front is not None:
            return self.front.endpoint(self.copy_account)
        return self.azurite.endpoint("blob", self.copy_account)

    def copy_settings(self) -> dict[str, str]:
        """App settings that turn copies on (every instance that does not say ``"copy": false``)."""
        assert self.copy_account is not None, "the seed has no second storage account"
        return {"APIM_DR_COPY_STORAGE_ACCOUNT": self.copy_account,
                "APIM_DR_COPY_BLOB_ENDPOINT": self.copy_blob_endpoint()}

    def create_containers(self, account: str, names: list[str]) -> None:
        """Create blob containers with the account key, as infra/ creates them in Azure (the app may not)."""
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        assert self.azurite is not None
        service = BlobServiceClient.from_connection_string(self.azurite.connection_string(account))
        for name in names:
            with contextlib.suppress(ResourceExistsError):
                service.create_container(name)

    def account_location(self, account: str) -> str:
        return str(next(a for a in self._seed["storageAccounts"] if a["name"] == account)["location"])

    def storage_outage(self, account: str, *, down: bool = True) -> None:
        """A regional storage outage of ``account``: its endpoint stops answering the app (the blob front closes
        every request to it) and API Management cannot reach it either (the emulator's region outage with
        ``storage`` only; ARM and the gateways in that region stay up). ``down=False`` ends it."""
        assert self.front is not None and self.apim is not None, "needs blob_front=True"
        region = self.account_location(account)
        if down:
            self.front.admin.set_account_outage(account)
            self.apim.admin._call("POST", f"/regions/{region}/down", {"arm": False, "gateway": False,
                                                                     "storage": True})
        else:
            self.front.admin.clear_account_outage(account)
            self.apim.admin._call("POST", f"/regions/{region}/up")

    @property
    def seed_data(self) -> dict[str, Any]:
        """The loaded seed (services, storage accounts and their role assignments, identities)."""
        return self._seed

    @property
    def function_app_principal_id(self) -> str:
        """Object ID of the Function App's first user-assigned identity (the caller the app's tokens name)."""
        return str(self._seed["functionApp"]["userAssignedIdentities"][0]["principalId"]).lower()

    @property
    def function_app_client_id(self) -> str:
        """Client ID of the Function App's first user-assigned identity in the seed."""
        return str(self._seed["functionApp"]["userAssignedIdentities"][0]["clientId"])

    # -- settings for the Function App -----------------------------------------------------------
    def app_settings(self, instances: list[Any], *, storage: StorageMode = "connection-string",
                     extra: dict[str, str] | None = None) -> dict[str, str]:
        """Values for local.settings.json / the host stand-in, pointing the app at local Azure."""
        assert self.azurite is not None and self.apim is not None and self.tls is not None
        settings: dict[str, str] = {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "BACKUP_SCHEDULE": "0 0 2 * * *",
            "APIM_DR_INSTANCES": json.dumps(instances),
            "APIM_DR_BACKUP_STORAGE_ACCOUNT": self.backup_account,
            "APIM_DR_BACKUP_BLOB_ENDPOINT": self.backup_blob_endpoint(),
            "APIM_DR_ARM_ENDPOINT": self.apim.arm_url,
            "AZURE_CLIENT_ID": self.function_app_client_id,
            **self.apim.env(),
        }
        if storage == "connection-string":
            settings["AzureWebJobsStorage"] = self.azurite.connection_string()
        else:
            settings.update({
                "AzureWebJobsStorage__queueServiceUri": self.azurite.endpoint("queue"),
                "AzureWebJobsStorage__tableServiceUri": self.azurite.endpoint("table"),
                "AzureWebJobsStorage__blobServiceUri": self.azurite.endpoint("blob"),
                "AzureWebJobsStorage__credential": "managedidentity",
                "AzureWebJobsStorage__clientId": self.function_app_client_id,
            })
        settings.update(extra or {})
        return settings
