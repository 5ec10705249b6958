"""Structural assertions on infra/, each shown to fail on a mutated copy of the templates."""

from __future__ import annotations

import re

import pytest

from tests.conftest import shared_dir
from tests.infra.bicep_model import (
    APIM_BACKUP_ACCESS,
    AZURE_YAML,
    BACKUP_STORAGE,
    CHECKS,
    CUSTOM_ROLES,
    DRILL_ALERTS,
    FUNCTION_APP,
    IDENTITY,
    JOB_ALERTS,
    MAIN,
    MONITORING,
    PARAMETERS_JSON,
    ROLES_JSON,
    ROOT,
    RPO_ALERTS,
    RUNTIME_STORAGE,
    STATUS_WORKBOOK,
    STATUS_WORKBOOK_JSON,
    STORAGE_ACCESS,
    Infra,
    app_settings,
)


@pytest.fixture(scope="module")
def infra() -> Infra:
    return Infra.from_disk()


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_templates_pass(infra, name):
    assert CHECKS[name](infra) == []


# (check, file, text to replace, replacement): each mutation breaks one rule the check guards.
MUTATIONS = [
    ("check_every_parameter_has_a_description", IDENTITY, "@description('Region of the identity.')\n", ""),
    ("check_no_registry_modules", MAIN, "module identity 'app/identity.bicep'",
     "module identity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.0'"),
    ("check_no_key_listing", FUNCTION_APP, "APIM_DR_WEBHOOK_URL: webhookUrl",
     "APIM_DR_WEBHOOK_URL: listKeys(resourceId('Microsoft.Storage/storageAccounts', 'st'), '2023-05-01').keys[0]"),
    ("check_no_guid_outside_role_table", STORAGE_ACCESS,
     "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)",
     "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'ba92f5b4-2d11-453d-a403-e96b0029c9fe')"),
    ("check_role_table", MAIN, "roles.storageTableDataContributor", "roles.storageTableDataReader"),
    ("check_role_table", ROLES_JSON, '"974c5e8b-45b9-4653-ba55-5f855dd0fb88"', '"Storage Queue Data Contributor"'),
    ("check_role_assignments_use_role_table", MAIN, "roleDefinitionId: roles.monitoringMetricsPublisher",
     "roleDefinitionId: 'Monitoring Metrics Publisher'"),
    ("check_role_assignments_use_role_table", STORAGE_ACCESS,
     "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)",
     "subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'owner')"),
    ("check_custom_roles", CUSTOM_ROLES, "'Microsoft.ApiManagement/service/restore/action'\n",
     "'Microsoft.ApiManagement/service/restore/action'\n          'Microsoft.ApiManagement/service/write'\n"),
    ("check_custom_roles", CUSTOM_ROLES, "'Microsoft.ApiManagement/service/read'\n", "'Microsoft.ApiManagement/*'\n"),
    ("check_custom_roles", MAIN, "var operatorGrantScopes = union(targetResourceGroupScopes, discoveryScopes)",
     "var operatorGrantScopes = targetResourceGroupScopes"),
    ("check_role_assignments_name_their_principal_type", APIM_BACKUP_ACCESS,
     "    principalType: 'ServicePrincipal'\n", ""),
    ("check_role_assignments_name_their_principal_type", STORAGE_ACCESS, "    principalType: principalType\n", ""),
    ("check_custom_roles", CUSTOM_ROLES, "'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/read'",
     "'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'"),
    # Polling a Location needs operationresults/read (issue 8 part 1).
    ("check_custom_roles", CUSTOM_ROLES, "          'Microsoft.ApiManagement/service/operationresults/read'\n", ""),
    # The CORS preflight reads the blob service properties (issue 8 part 2).
    ("check_custom_roles", CUSTOM_ROLES, "          'Microsoft.Storage/storageAccounts/blobServices/read'\n", ""),
    # Backup Data never deletes: only the retention role does.
    ("check_custom_roles", CUSTOM_ROLES,
     "          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'\n        ]\n",
     "          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'\n"
     "          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'\n        ]\n"),
    # The retention role deletes blobs and does nothing else (no version or permanent delete, no write).
    ("check_custom_roles", CUSTOM_ROLES,
     "          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'\n",
     "          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'\n"
     "          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/permanentDelete/action'\n"),
    ("check_custom_roles", CUSTOM_ROLES,
     "          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'\n",
     "          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*'\n"),
    ("check_function_identity_roles", MAIN,
     "      customRoles.outputs.backupDataRoleId\n      customRoles.outputs.backupCatalogRoleId",
     "      roles.storageBlobDataContributor\n      customRoles.outputs.backupCatalogRoleId"),
    ("check_function_identity_roles", MAIN, "      roles.storageQueueDataContributor\n", ""),
    # Retention's delete stays in its own assignment, with its own role.
    ("check_function_identity_roles", MAIN, "      customRoles.outputs.backupRetentionRoleId\n",
     "      customRoles.outputs.backupDataRoleId\n"),
    ("check_function_identity_roles", MAIN,
     "    storageAccountName: backupStorage.outputs.name\n    principalId: identity.outputs.principalId\n"
     "    roleDefinitionIds: [\n      customRoles.outputs.backupRetentionRoleId",
     "    storageAccountName: runtimeStorage.outputs.name\n    principalId: identity.outputs.principalId\n"
     "    roleDefinitionIds: [\n      customRoles.outputs.backupRetentionRoleId"),
    ("check_function_identity_roles", MAIN,
     "        principalId: identity.outputs.principalId\n        principalType: 'Serv",
     "        principalId: identity.outputs.clientId\n        principalType: 'Serv"),
    ("check_operator_roles", MAIN, "    principalType: operatorPrincipalType\n    roleDefinitionIds: [\n"
     "      customRoles.outputs.backupDataRoleId\n",
     "    principalType: operatorPrincipalType\n    roleDefinitionIds: [\n      roles.storageBlobDataContributor\n"),
    ("check_operator_roles", MAIN, "      roles.storageQueueDataContributor\n      roles.storageTableDataContributor\n"
     "    ]\n  }\n}]\n", "      roles.storageQueueDataContributor\n      roles.storageTableDataContributor\n"
     "      roles.storageBlobDataOwner\n    ]\n  }\n}]\n"),
    ("check_operator_roles", MAIN, "    storageAccountName: runtimeStorage.outputs.name\n    principalId: id\n",
     "    storageAccountName: backupStorage.outputs.name\n    principalId: id\n"),
    ("check_operator_roles", MAIN,
     "    ], operatorPrincipals)\n    roleDefinitionId: customRoles.outputs.operatorRoleId\n  }\n}]\n\n// Discovery",
     "    ])\n    roleDefinitionId: customRoles.outputs.operatorRoleId\n  }\n}]\n\n// Discovery"),
    ("check_apim_identities_on_backup_account", MAIN, "    roleDefinitionId: roles.storageBlobDataContributor\n",
     "    roleDefinitionId: roles.storageBlobDataOwner\n"),
    ("check_apim_identities_on_backup_account", MAIN,
     "var accessTargets = concat(primaryTargets, standbyTargets, drillTargets)", "var accessTargets = primaryTargets"),
    # A drill instance restores from the backup container too (issue 11 part 4).
    ("check_apim_identities_on_backup_account", MAIN,
     "var accessTargets = concat(primaryTargets, standbyTargets, drillTargets)",
     "var accessTargets = concat(primaryTargets, standbyTargets)"),
    # Manifests and drills list the configuration's names.
    ("check_custom_roles", CUSTOM_ROLES, "          'Microsoft.ApiManagement/service/namedValues/read'\n", ""),
    ("check_apim_identities_on_backup_account", APIM_BACKUP_ACCESS, "  scope: container\n", "  scope: storage\n"),
    ("check_apim_identities_on_backup_account", MAIN, "    containerName: t.container\n",
     "    containerName: backupContainerName\n"),
    ("check_apim_identities_on_backup_account", MAIN, "var backupContainerNames = union([\n  backupContainerName\n], "
     "instanceContainers)", "var backupContainerNames = [\n  backupContainerName\n]"),
    ("check_storage_accounts_refuse_shared_keys", RUNTIME_STORAGE, "allowSharedKeyAccess: false",
     "allowSharedKeyAccess: true"),
    ("check_storage_accounts_refuse_shared_keys", MAIN, "allowSharedKeyAccess: usesAccessKey",
     "allowSharedKeyAccess: true"),
    ("check_flex_function_app", FUNCTION_APP, "version: '3.11'", "version: '3.12'"),
    ("check_flex_function_app", FUNCTION_APP, "httpsOnly: true", "httpsOnly: false"),
    # Flex Consumption rejects siteConfig.ftpsState, and wants a location on the publishing policies.
    ("check_flex_function_app", FUNCTION_APP, "      http20Enabled: true\n",
     "      http20Enabled: true\n      ftpsState: 'Disabled'\n"),
    ("check_flex_function_app", FUNCTION_APP, "  name: 'scm'\n  location: location\n", "  name: 'scm'\n"),
    ("check_flex_function_app", FUNCTION_APP, "      minTlsVersion: '1.2'", "      minTlsVersion: '1.0'"),
    ("check_flex_function_app", FUNCTION_APP, "name: 'FC1'", "name: 'Y1'"),
    ("check_no_flex_rejected_settings", FUNCTION_APP, "  AZURE_CLIENT_ID: identityClientId\n",
     "  AZURE_CLIENT_ID: identityClientId\n  FUNCTIONS_WORKER_RUNTIME: 'python'\n"),
    ("check_no_flex_rejected_settings", FUNCTION_APP, "  AZURE_CLIENT_ID: identityClientId\n",
     "  AZURE_CLIENT_ID: identityClientId\n  WEBSITE_TIME_ZONE: 'UTC'\n"),
    ("check_app_settings_match_the_code", FUNCTION_APP, "  APIM_DR_ARM_ENDPOINT: armEndpoint\n", ""),
    ("check_app_settings_match_the_code", FUNCTION_APP, "  AZURE_CLIENT_ID: identityClientId\n",
     "  AZURE_CLIENT_ID: identityClientId\n  APIM_DR_NOT_READ_ANYWHERE: 'x'\n"),
    ("check_app_settings_match_the_code", FUNCTION_APP, "  AZURE_CLIENT_ID: identityClientId\n",
     "  AZURE_CLIENT_ID: identityClientId\n  AzureWebJobsStorage: 'UseDevelopmentStorage=true'\n"),
    ("check_setting_defaults_match_the_code", MAIN, "param rpoHours int = 26", "param rpoHours int = 24"),
    ("check_setting_defaults_match_the_code", MAIN, "param backupSchedule string = '0 0 2 * * *'",
     "param backupSchedule string = '0 0 3 * * *'"),
    ("check_setting_defaults_match_the_code", MAIN, "@maxValue(696)\n@description('RPO target",
     "@maxValue(700)\n@description('RPO target"),
    ("check_runtime_storage_queues_and_tables", RUNTIME_STORAGE, "name: 'apimdrjobs'", "name: 'jobs'"),
    ("check_runtime_storage_queues_and_tables", RUNTIME_STORAGE, "name: 'apim-dr-jobs-poison'",
     "name: 'apim-dr-jobs-dead'"),
    ("check_backup_storage", BACKUP_STORAGE, "isVersioningEnabled: true", "isVersioningEnabled: false"),
    ("check_backup_storage", BACKUP_STORAGE, "corsRules: []",
     "corsRules: [\n        {\n          allowedOrigins: [\n            '*'\n          ]\n        }\n      ]"),
    ("check_backup_storage", BACKUP_STORAGE, "allowBlobPublicAccess: false", "allowBlobPublicAccess: true"),
    ("check_backup_storage", BACKUP_STORAGE, "bypass: 'AzureServices'", "bypass: 'None'"),
    ("check_backup_storage", BACKUP_STORAGE, "param skuName string = 'Standard_GZRS'",
     "param skuName string = 'Standard_LRS'"),
    ("check_backup_storage", MAIN, "  'Standard_RAGZRS'\n])\n@description('Redundancy",
     "  'Standard_RAGZRS'\n  'Standard_ZRS'\n])\n@description('Redundancy"),
    ("check_backup_storage", BACKUP_STORAGE, "enabled: true\n      days: softDeleteDays\n    }\n    containerDelete",
     "enabled: false\n      days: softDeleteDays\n    }\n    containerDelete"),
    ("check_backup_lifecycle_backstop", BACKUP_STORAGE,
     "              blobIndexMatch: [\n                {\n                  name: 'apimdr_state'\n"
     "                  op: '=='\n                  value: 'succeeded'\n                }\n              ]\n", ""),
    ("check_backup_lifecycle_backstop", BACKUP_STORAGE, "value: 'succeeded'", "value: 'running'"),
    ("check_backup_lifecycle_backstop", BACKUP_STORAGE, "daysAfterCreationGreaterThan: backstopDeleteDays",
     "daysAfterCreationGreaterThan: 30"),
    ("check_backup_lifecycle_backstop", BACKUP_STORAGE, "@minValue(31)\n@maxValue(99999)",
     "@minValue(1)\n@maxValue(99999)"),
    ("check_backup_lifecycle_backstop", MAIN, "backstopDeleteDays: backupBackstopDays", "backstopDeleteDays: 31"),
    ("check_backup_lifecycle_backstop", MAIN, "], instanceMaxAgeDays)) + retentionBackstopDays",
     "], [])) + retentionBackstopDays"),
    # Grandfather-father-son rules (issue 21): the backstop waits beyond the longest GFS horizon.
    ("check_backup_lifecycle_backstop", MAIN, "  gfsDays\n  37\n", "  37\n"),
    ("check_backup_lifecycle_backstop", MAIN, "  31 * (retentionKeepMonthly + 1)\n", "  31\n"),
    ("check_backup_lifecycle_backstop", MAIN, "backstopDeleteDays: backupBackstopDays\n    networkDefaultAction: "
     "backupNetworkDefaultAction\n    allowSharedKeyAccess: false", "backstopDeleteDays: 67\n    "
     "networkDefaultAction: backupNetworkDefaultAction\n    allowSharedKeyAccess: false"),
    ("check_backup_lifecycle_backstop", MAIN, "  37\n  retentionMaxAgeDays\n], instanceMaxAgeDays))",
     "  37\n  37\n], instanceMaxAgeDays))"),
    ("check_monitoring", MONITORING, "DisableLocalAuth: true", "DisableLocalAuth: false"),
    ("check_monitoring", MONITORING, "      disableLocalAuth: true", "      disableLocalAuth: false"),
    ("check_monitoring", JOB_ALERTS, "state: 'TimedOut'", "state: 'Running'"),
    ("check_monitoring", JOB_ALERTS, 'message startswith "APIMDR_JOB "', 'message startswith "JOB "'),
    # Issue 11: the RPO breach rule reads the monitor's lines, for state breached, and reaches people.
    ("check_rpo_alerts", RPO_ALERTS, 'message startswith "APIMDR_RPO "', 'message startswith "APIMDR_JOB "'),
    ("check_rpo_alerts", RPO_ALERTS, "substring(message, 11)", "substring(message, 10)"),
    ("check_rpo_alerts", RPO_ALERTS, 'tostring(rpo.state) == "breached"', 'tostring(rpo.state) == "at-risk"'),
    ("check_rpo_alerts", RPO_ALERTS, "    severity: 1\n", "    severity: 3\n"),
    ("check_rpo_alerts", RPO_ALERTS, "    enabled: true\n", "    enabled: false\n"),
    ("check_rpo_alerts", RPO_ALERTS, "      actionGroupId\n", "      appInsightsId\n"),
    ("check_rpo_alerts", MAIN, "    actionGroupId: jobAlerts.outputs.actionGroupId\n", ""),
    ("check_rpo_alerts", MAIN, "module rpoAlerts 'monitor/rpo-alerts.bicep'",
     "module rpoAlerts 'monitor/job-alerts.bicep'"),
    ("check_rpo_alerts", JOB_ALERTS, "output actionGroupId string", "output groupId string"),
    ("check_status_workbook", MAIN, "'apimdr-status-workbook'\n  scope: resourceGroup(rgName)\n  params: {\n"
     "    appInsightsId: monitoring.outputs.appInsightsId", "'apimdr-status-workbook'\n  scope: resourceGroup(rgName)\n"
     "  params: {\n    appInsightsId: 'x'"),
    ("check_status_workbook", STATUS_WORKBOOK, "kind: 'shared'", "kind: 'user'"),
    ("check_status_workbook", STATUS_WORKBOOK, "sourceId: toLower(appInsightsId)", "sourceId: 'azure monitor'"),
    ("check_status_workbook", STATUS_WORKBOOK, "loadJsonContent('status-workbook.json')",
     "loadJsonContent('other.json')"),
    ("check_status_workbook", STATUS_WORKBOOK_JSON, '"version": "Notebook/1.0"', '"version": "Notebook/0.9"'),
    ("check_status_workbook", STATUS_WORKBOOK_JSON, 'message startswith \\"APIMDR_RPO \\"',
     'message startswith \\"APIMDR_RPOS \\"'),
    ("check_status_workbook", STATUS_WORKBOOK_JSON, "tostring(job.remediation)", "tostring(job.fix)"),
    ("check_status_workbook", STATUS_WORKBOOK_JSON, "sync.lastSucceeded.backupCreatedAt",
     "sync.lastSucceeded.createdAt"),
    ("check_status_workbook", STATUS_WORKBOOK_JSON, "| where timestamp {TimeRange}\\n| where message startswith "
     "\\\"APIMDR_DRILL", "| where message startswith \\\"APIMDR_DRILL"),
    ("check_status_workbook", STATUS_WORKBOOK_JSON, '"queryType": 0,\n        "resourceType": '
     '"microsoft.insights/components",\n        "visualization": "table",\n        "noDataMessage": "No open',
     '"queryType": 1,\n        "resourceType": "microsoft.insights/components",\n        "visualization": '
     '"table",\n        "noDataMessage": "No open'),
    # Issue 11 part 4: the failed-drill rule reads the drills' lines, for state failed, and reaches people.
    ("check_drill_alerts", DRILL_ALERTS, 'message startswith "APIMDR_DRILL "', 'message startswith "APIMDR_RPO "'),
    ("check_drill_alerts", DRILL_ALERTS, "substring(message, 13)", "substring(message, 11)"),
    ("check_drill_alerts", DRILL_ALERTS, 'tostring(drill.state) == "failed"', 'tostring(drill.state) == "running"'),
    ("check_drill_alerts", DRILL_ALERTS, "    enabled: true\n", "    enabled: false\n"),
    ("check_drill_alerts", DRILL_ALERTS, "      actionGroupId\n", "      appInsightsId\n"),
    ("check_drill_alerts", MAIN, "module drillAlerts 'monitor/drill-alerts.bicep'",
     "module drillAlerts 'monitor/rpo-alerts.bicep'"),
    ("check_main_template", MAIN, "targetScope = 'subscription'", "targetScope = 'resourceGroup'"),
    ("check_main_template", MAIN, "output SERVICE_API_NAME string = functionApp.outputs.name\n", ""),
    ("check_parameters_file", PARAMETERS_JSON, '"environmentName": {\n      "value": "${AZURE_ENV_NAME}"\n    },\n',
     ""),
    ("check_parameters_file", PARAMETERS_JSON, '"${AZURE_LOCATION}"', '"westeurope"'),
    ("check_parameters_file", PARAMETERS_JSON, '"discoveryTag": {', '"discoveryTags": {'),
    ("check_azure_yaml", AZURE_YAML, "host: function", "host: appservice"),
    ("check_azure_yaml", AZURE_YAML, "project: .", "project: ./src"),
]


@pytest.mark.parametrize(("name", "path", "old", "new"), MUTATIONS,
                         ids=[f"{m[0].removeprefix('check_')}[{i}]" for i, m in enumerate(MUTATIONS)])
def test_check_catches_the_mutation(infra, name, path, old, new):
    assert CHECKS[name](infra.mutated(path, old, new)), f"{name} did not notice {old!r} -> {new!r} in {path}"


def test_every_check_is_shown_to_fail():
    assert {m[0] for m in MUTATIONS} == set(CHECKS)


def test_app_settings_are_found(infra):
    # Guards the extraction itself: a parser change that returned nothing would pass the coverage check vacuously.
    settings = app_settings(infra)
    assert {"AzureWebJobsStorage__credential", "APIM_DR_INSTANCES", "APIM_DR_BACKUP_STORAGE_KEY"} <= settings
    assert len(settings) >= 20


def test_role_guids_match_the_reference(infra):
    """roles.json against the built-in role tables of the shared reference (present in CI)."""
    reference_dir = shared_dir("reference")
    text = (reference_dir / "functions-and-bicep.md").read_text() + (reference_dir / "apim-arm.md").read_text()
    row = re.compile(r"^\| ([A-Za-z ]+?)(?: \([^|]*\))? \| `([0-9a-f-]{36})` \|", re.M)
    reference = {name.strip(): guid for name, guid in row.findall(text)}
    assert len(reference) >= 8, "could not read the role table of the reference"
    checked = 0
    for key, guid in infra.json(ROLES_JSON).items():
        name = re.sub(r"(?<!^)(?=[A-Z])", " ", key).title()
        if name in reference:
            assert reference[name] == guid, f"{key}: {guid} but the reference says {reference[name]}"
            checked += 1
    # Key Vault Secrets User is in neither table (checked against MicrosoftDocs built-in-roles/security.md).
    assert checked == len(infra.json(ROLES_JSON)) - 1


def test_deploy_doc_covers_every_parameter_and_role(infra):
    doc = (ROOT / "docs" / "deploy.md").read_text()
    missing_params = [p for p in infra.tree(MAIN)["parameters"] if f"`{p}`" not in doc]
    assert not missing_params, f"docs/deploy.md does not describe parameters {missing_params}"
    missing_roles = [key for key, guid in infra.json(ROLES_JSON).items() if guid not in doc]
    assert not missing_roles, f"docs/deploy.md role table lacks {missing_roles}"
