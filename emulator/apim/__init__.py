"""Emulator of the API Management management plane (ARM ``Microsoft.ApiManagement/service``).

Backup/restore as long-running operations with real blobs in Azurite, an App-Service-style
managed-identity endpoint, fault injection and a movable clock. Documentation: emulator/README.md.

Programmatic use (tests, demo)::

    emu = ApimEmulator(state_dir, seed, tls, blob_endpoint=azurite.endpoint("blob", "").rstrip("/")).start()
    client = ApiManagementClient(cred, sub, base_url=emu.arm_url, connection_verify=str(tls.ca_bundle))
    emu.admin.advance_clock(31 * 86400)
"""

from .admin import EmulatorAdmin, EmulatorAdminError
from .process import ApimEmulator
from .resources import SUPPORTED_API_VERSIONS
from .seed import SeedError, load_seed, storage_accounts

__all__ = [
    "SUPPORTED_API_VERSIONS",
    "ApimEmulator",
    "EmulatorAdmin",
    "EmulatorAdminError",
    "SeedError",
    "load_seed",
    "storage_accounts",
]
