"""A stand-in before Azurite's blob endpoint that enforces two Azure rules Azurite does not:
blob immutability (WORM policies, legal holds) and RBAC for bearer-token data requests.

Never imports the app (``dr_core``): the rules come from Azure's documentation (see README.md).
"""

from .admin import BlobFrontAdmin, BlobFrontAdminError
from .front import BlobFront
from .rbac import builtin_roles, find_role, roles_from_seed

__all__ = ["BlobFront", "BlobFrontAdmin", "BlobFrontAdminError", "builtin_roles", "find_role", "roles_from_seed"]
