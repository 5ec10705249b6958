"""What each pricing tier lacks, for the configuration child resources.

Source: Microsoft's feature matrix, ``articles/api-management/api-management-features.md``
("Feature-based comparison of the Azure API Management tiers", ms.date 11/11/2025, MicrosoftDocs/azure-docs),
its footnote 2 ("Developer portal: including related functionality such as users, groups, issues,
applications, and email templates and notifications"), ``articles/api-management/v2-service-tiers-overview.md``
("Currently unavailable features" of the v2 tiers: developer portal reports; built-in analytics replaced
by Azure Monitor) and the limits table ``includes/api-management-service-limits.md`` (policy document size:
16 KiB in Consumption, 256 KiB elsewhere).

A refused call answers APIM's ``400 MethodNotAllowedInPricingTier`` "Method not allowed in {tier} pricing
tier", the wording the emulator already uses for backup and restore.
"""

from __future__ import annotations

from .errors import ArmError, apim_error

CLASSIC = frozenset({"Developer", "Basic", "Standard", "Premium", "Isolated"})
V2 = frozenset({"BasicV2", "StandardV2", "PremiumV2"})

# feature -> tiers that do not have it (the matrix's "No" cells)
UNAVAILABLE: dict[str, frozenset[str]] = {
    # "Developer portal | Consumption: No" and footnote 2 (users, groups, issues ... go with it).
    "developerPortal": frozenset({"Consumption"}),
    "groups": frozenset({"Consumption"}),
    "users": frozenset({"Consumption"}),
    # "Azure Monitor and Log Analytics request logs | Consumption: No" (Application Insights: Yes).
    "azureMonitorLogs": frozenset({"Consumption"}),
    # "API analytics | Consumption: No"; v2: built-in analytics and developer portal reports unavailable.
    "reports": frozenset({"Consumption"}) | V2,
}
POLICY_DOCUMENT_LIMIT = {"Consumption": 16 * 1024}
DEFAULT_POLICY_DOCUMENT_LIMIT = 256 * 1024


def has(tier: str, feature: str) -> bool:
    return tier not in UNAVAILABLE.get(feature, frozenset())


def refusal(tier: str) -> ArmError:
    return apim_error(400, "MethodNotAllowedInPricingTier", f"Method not allowed in {tier} pricing tier")


def require(tier: str, feature: str | None) -> None:
    if feature is not None and not has(tier, feature):
        raise refusal(tier)


def policy_limit(tier: str) -> int:
    """Bytes a policy document may have in ``tier``."""
    return POLICY_DOCUMENT_LIMIT.get(tier, DEFAULT_POLICY_DOCUMENT_LIMIT)


def has_builtin_groups(tier: str) -> bool:
    """Administrators, Developers and Guests exist wherever groups do."""
    return has(tier, "groups")
