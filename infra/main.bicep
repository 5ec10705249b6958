// apim-dr: scheduled backups and guarded restores for Azure API Management.
//
// Deploys, with no secrets and no keys:
//   - a Function App on Flex Consumption (Linux, Python 3.11) with a user-assigned identity,
//   - its runtime storage (identity-based connections only, shared keys off),
//   - the backup storage account (geo-redundant, versioned, soft delete, optional WORM, a lifecycle
//     backstop behind the app's retention),
//   - Log Analytics + Application Insights (local auth off) and alert rules on failed/timed-out jobs,
//   - every role assignment the solution needs, including on APIM instances in other
//     resource groups or subscriptions (through modules).
//
// Deploy with `azd up`, or `az deployment sub create` (see docs/deploy.md).
// Role definition GUIDs live in one table, roles.json; no other file holds a GUID.
// Loops use `if(...)` with no space before the parenthesis: Bicep reads it the same way, and the
// offline parsers used in CI (pycep-parser 0.5.1 and 0.7.1) only agree on that spelling.

targetScope = 'subscription'

// ---------------------------------------------------------------------------------------------
// Parameters: environment
// ---------------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('Name of the azd environment. Seeds the resource names and is set as tag azd-env-name on every resource.')
param environmentName string

@minLength(1)
@description('Azure region of the Function App, its storage, the monitoring resources and the backup storage account. Pick a region other than the protected instances\' if the backups must survive a regional outage (the account is geo-redundant either way).')
param location string

@description('Resource group to deploy into. Empty: create rg-<environmentName>. A name that already exists is used as it is; its tags are left alone.')
param resourceGroupName string = ''

// ---------------------------------------------------------------------------------------------
// Parameters: what to protect
// ---------------------------------------------------------------------------------------------

@description('''Protected APIM instances, one object each:
  resourceId          /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ApiManagement/service/<name>
  standby             resource ID of the instance restores go to (optional, same pricing tier)
  accessType          SystemAssignedManagedIdentity | UserAssignedManagedIdentity | AccessKey (optional, default storageAccessType)
  identityResourceId  user-assigned identity attached to the instance and its standby (optional, default apimIdentityResourceId)
  clientId            client ID of that identity (optional, default apimIdentityClientId)
  container, alias    passed to the app (optional)
  standbySync, drillTarget, drillEveryDays, rpoHours, keepLast, maxAgeDays, recovery, maxAttempts, keepDaily,
  keepWeekly, keepMonthly, copy
                      passed to the app (optional; docs/configuration.md, per-instance options)
The Function App gets the APIM DR Operator role on each instance, standby and drill target; the
identity of each gets Storage Blob Data Contributor on the instance's backup container.''')
param protectedInstances array = []

@description('Comma-separated subscription IDs searched for APIM instances tagged with discoveryTag. The Function App gets the APIM DR Operator role on each of these subscriptions (read, backup and restore of every APIM instance in it). Discovered instances\' own identities are not granted on the backup account: list those instances in protectedInstances, or grant them by hand (docs/deploy.md).')
param discoverySubscriptionIds string = ''

@description('Tag (name=value) that marks an APIM instance for backup when discovery is used.')
param discoveryTag string = 'apim-dr:backup=true'

@description('NCRONTAB schedule of backups: five fields (minute first) or six (seconds first), in UTC (Flex Consumption does not support WEBSITE_TIME_ZONE). Default: 02:00 UTC every day.')
param backupSchedule string = '0 0 2 * * *'

@allowed([
  'SystemAssignedManagedIdentity'
  'UserAssignedManagedIdentity'
  'AccessKey'
])
@description('How the APIM instances reach the backup account, unless an instance says otherwise. SystemAssignedManagedIdentity (recommended; the only mode that passes the storage firewall as a trusted service), UserAssignedManagedIdentity (set apimIdentityResourceId and apimIdentityClientId), or AccessKey (turns shared-key access on for the backup account; set backupStorageKeySecretUri and backupStorageKeyVaultResourceId).')
param storageAccessType string = 'SystemAssignedManagedIdentity'

@description('UserAssignedManagedIdentity: resource ID of the user-assigned identity attached to the APIM instances (and standbys). It gets Storage Blob Data Contributor on the backup account.')
param apimIdentityResourceId string = ''

@description('UserAssignedManagedIdentity: client ID of that identity (az identity show --ids <id> --query clientId). Sent to APIM in each backup and restore request.')
param apimIdentityClientId string = ''

@description('AccessKey only: Key Vault secret URI (https://<vault>.vault.azure.net/secrets/<name>) holding the backup account key. The app reads it through a Key Vault reference; the template never reads keys itself.')
param backupStorageKeySecretUri string = ''

@description('AccessKey only: resource ID of the Key Vault (RBAC permission model) holding that secret. The Function App\'s identity gets Key Vault Secrets User on the secret alone.')
param backupStorageKeyVaultResourceId string = ''

@description('Object IDs of the people who run the operator CLI during an incident, when the Function App may be down (usually one Entra group). They get APIM DR Operator on every protected, standby and drill instance (and discovery subscription), APIM DR Backup Data plus APIM DR Backup Catalog on the backup account (no delete), and Storage Queue Data Contributor plus Storage Table Data Contributor on the runtime account (the jobs table and work queues). Empty: nobody but the Function App.')
param operatorPrincipalIds array = []

@allowed([
  'Group'
  'User'
  'ServicePrincipal'
])
@description('Kind of the operatorPrincipalIds entries.')
param operatorPrincipalType string = 'Group'

@description('Object IDs of people who may restore configuration snapshots item by item (`apim-dr snapshot restore`) without any backup or restore right: they get APIM DR Configuration Restore (write and delete of configuration items) on every protected, standby and drill instance. The Function App always has it. Empty: nobody else.')
param configRestorePrincipalIds array = []

// ---------------------------------------------------------------------------------------------
// Parameters: backup storage
// ---------------------------------------------------------------------------------------------

@minLength(3)
@maxLength(63)
@description('Default blob container for backups. It and every container an instance names are created by this template.')
param backupContainerName string = 'apim-backups'

@allowed([
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
@description('Redundancy of the backup account. Geo-redundant options only, so the backups outlive a regional outage. GZRS needs a region with availability zones.')
param backupStorageSku string = 'Standard_GZRS'

@minValue(1)
@maxValue(365)
@description('Days a deleted backup blob (and container) can be undeleted.')
param backupSoftDeleteDays int = 14

@minValue(1)
@maxValue(3650)
@description('Days after which previous versions of backup blobs are removed by a lifecycle rule. Each metadata or overwrite makes a version; APIM backups expire after 30 days anyway.')
param backupVersionRetentionDays int = 30

@minValue(0)
@maxValue(146000)
@description('Version-level WORM retention in days for every blob version in the backup containers (0 = off). The policy is created unlocked; lock it by hand once tested. Takes effect only when a container is first created: a later deployment cannot turn version-level immutability on for a container that already exists. Backups inside the period cannot be deleted, even by an administrator.')
param backupImmutabilityDays int = 0

@description('Region of a second backup account that every succeeded backup (and its manifest) is copied to, server-side, with the Function App\'s identity; restores read the copy when the backup account is unreachable. Pick a region other than location\'s (and its geo-pair\'s, if you can). Empty: no second account, no copies. The copy account gets the backup account\'s SKU, immutability, soft delete, versioning and lifecycle rules.')
param copyStorageLocation string = ''

@allowed([
  'Allow'
  'Deny'
])
@description('Default network action of the backup account. Trusted Azure services (APIM with its system-assigned identity) are always let through. Deny also blocks the Function App unless it reaches the account through a private network, which this template does not set up.')
param backupNetworkDefaultAction string = 'Allow'

// ---------------------------------------------------------------------------------------------
// Parameters: alerts and job limits
// ---------------------------------------------------------------------------------------------

@secure()
@description('Webhook the app posts its announcements to (failed and timed-out jobs, RPO breaches and recoveries; Teams and Slack compatible JSON). Empty: log only. Becomes app setting APIM_DR_WEBHOOK_URL.')
param alertWebhookUrl string = ''

@secure()
@description('Webhook of the Azure Monitor action group for the job and RPO alert rules (Azure Monitor common alert schema, so usually not the same URL as alertWebhookUrl). Empty: no webhook receiver.')
param monitorAlertWebhookUrl string = ''

@description('E-mail address of the action group for the job and RPO alert rules. Empty: no e-mail receiver. With neither this nor monitorAlertWebhookUrl, the alert rules still fire and show in the portal.')
param alertEmailAddress string = ''

@minValue(5)
@maxValue(1440)
@description('A backup still running after this many minutes is marked TimedOut and announced.')
param backupTimeoutMinutes int = 120

@minValue(5)
@maxValue(1440)
@description('A restore still running after this many minutes is marked TimedOut and announced.')
param restoreTimeoutMinutes int = 180

@minValue(1)
@maxValue(3600)
@description('Upper bound, in seconds, on the delay between two polls of a running backup or restore, whatever Retry-After says.')
param maxPollDelaySeconds int = 300

@minValue(0)
@maxValue(696)
@description('Restore preflight refuses a backup that expires within this many hours (APIM backups expire after 30 days; a restore can outlast what is left).')
param expiryMarginHours int = 24

@minValue(1)
@maxValue(3600)
@description('Seconds a job may stay in Starting before another worker assumes the first one died and checks the instance (it never re-sends a backup that is running). Keep it above host.json functionTimeout.')
param startLeaseSeconds int = 360

@allowed([
  'auto'
  'native'
  'snapshot'
  'both'
])
@description('Which recovery points protect an instance: native (APIM backup), snapshot (configuration snapshots, every tier), both, or auto (both where the tier has backup, snapshots only on Consumption and v2). Per instance: recovery.')
param recovery string = 'auto'

@minValue(5)
@maxValue(1440)
@description('Minutes a configuration snapshot may keep reading before it becomes TimedOut.')
param snapshotTimeoutMinutes int = 120

@minValue(1)
@maxValue(25)
@description('ARM reads per second configuration snapshots may spend per subscription (ARM refills 25 per second per principal).')
param snapshotReadsPerSecond int = 20

@minValue(1)
@maxValue(696)
@description('RPO target in hours: the newest restorable backup of an instance may be this old before the instance is breached (at-risk from 80 %). Per instance: rpoHours.')
param rpoHours int = 26

@minValue(1)
@maxValue(1000)
@description('Retention never leaves fewer than this many backups of an instance. Per instance: keepLast.')
param retentionKeepLast int = 3

@minValue(1)
@maxValue(3650)
@description('Retention deletes backups older than this many days (APIM restores nothing older than 30 days; 37 adds a 7-day grace). Never the newest restorable one. Per instance: maxAgeDays.')
param retentionMaxAgeDays int = 37

@minValue(0)
@maxValue(3650)
@description('Grandfather-father-son retention: also keep the newest backup of each of the last this many UTC days (0 = off). Per instance: keepDaily.')
param retentionKeepDaily int = 0

@minValue(0)
@maxValue(520)
@description('Also keep the newest backup of each of the last this many ISO weeks (0 = off). Per instance: keepWeekly.')
param retentionKeepWeekly int = 0

@minValue(0)
@maxValue(120)
@description('Also keep the newest backup of each of the last this many calendar months (0 = off); native backups older than 30 days are history only, APIM restores none of them. Per instance: keepMonthly.')
param retentionKeepMonthly int = 0

@minValue(1)
@maxValue(3650)
@description('Days the backup account\'s lifecycle rule waits beyond the longest retention (37 days, retentionMaxAgeDays, or any instance\'s maxAgeDays) before it deletes a backup itself: a backstop for when the app\'s daily prune does not run. It deletes whatever keepLast says.')
param retentionBackstopDays int = 30

@minValue(1)
@maxValue(365)
@description('Days between restore drills of an instance that names a drillTarget. Per instance: drillEveryDays.')
param drillEveryDays int = 7

@minValue(1)
@maxValue(10)
@description('Operations a backup job may run: a backup whose operation failed for a transient reason (internal error, time-out) is tried again up to this many times within its deadline; permanent failures end it at once. Per instance: maxAttempts.')
param backupMaxAttempts int = 3

@minValue(1)
@maxValue(3600)
@description('Seconds before a backup\'s second attempt; doubled for each further attempt (at most an hour).')
param attemptBackoffSeconds int = 120

@minValue(40)
@maxValue(1000)
@description('Flex Consumption: most instances the app scales out to.')
param functionMaximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
@description('Flex Consumption: memory of each instance, in MB.')
param functionInstanceMemoryMB int = 2048

@minValue(30)
@maxValue(730)
@description('Days Log Analytics keeps the app\'s logs (job history in the logs; the job table keeps its own).')
param logRetentionDays int = 30

// ---------------------------------------------------------------------------------------------
// Names and shared values
// ---------------------------------------------------------------------------------------------

var abbrs = loadJsonContent('abbreviations.json')
var roles = loadJsonContent('roles.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var rgName = empty(resourceGroupName) ? '${abbrs.resourcesResourceGroups}${environmentName}' : resourceGroupName
var functionAppName = '${abbrs.webSitesFunctions}${resourceToken}'

// The app wants the ARM endpoint without its trailing slash (https://management.azure.com).
var resourceManager = environment().resourceManager
var armEndpoint = endsWith(resourceManager, '/') ? substring(resourceManager, 0, length(resourceManager) - 1) : resourceManager

// ---------------------------------------------------------------------------------------------
// Protected instances: normalised once (every optional field present), then turned into the list
// of APIM instances whose identities need access (primaries first, then standbys). Entries must be
// objects here; the app also accepts bare resource ID strings, this template does not.
// ---------------------------------------------------------------------------------------------

var instances = [for inst in protectedInstances: {
  resourceId: inst.resourceId
  standby: contains(inst, 'standby') ? inst.standby : ''
  accessType: contains(inst, 'accessType') ? inst.accessType : storageAccessType
  identityResourceId: contains(inst, 'identityResourceId') ? inst.identityResourceId : apimIdentityResourceId
  container: contains(inst, 'container') ? inst.container : backupContainerName
  drillTarget: contains(inst, 'drillTarget') ? inst.drillTarget : ''
}]

// APIM_DR_INSTANCES for the app: only the keys the app reads, and only when given.
var appInstances = [for inst in protectedInstances: union({
  resourceId: inst.resourceId
}, contains(inst, 'standby') ? {
  standby: inst.standby
} : {}, contains(inst, 'accessType') ? {
  accessType: inst.accessType
} : {}, contains(inst, 'clientId') ? {
  clientId: inst.clientId
} : {}, contains(inst, 'container') ? {
  container: inst.container
} : {}, contains(inst, 'alias') ? {
  alias: inst.alias
} : {}, contains(inst, 'standbySync') ? {
  standbySync: inst.standbySync
} : {}, contains(inst, 'drillTarget') ? {
  drillTarget: inst.drillTarget
} : {}, contains(inst, 'drillEveryDays') ? {
  drillEveryDays: inst.drillEveryDays
} : {}, contains(inst, 'rpoHours') ? {
  rpoHours: inst.rpoHours
} : {}, contains(inst, 'keepLast') ? {
  keepLast: inst.keepLast
} : {}, contains(inst, 'maxAgeDays') ? {
  maxAgeDays: inst.maxAgeDays
} : {}, contains(inst, 'maxAttempts') ? {
  maxAttempts: inst.maxAttempts
} : {}, contains(inst, 'recovery') ? {
  recovery: inst.recovery
} : {}, contains(inst, 'keepDaily') ? {
  keepDaily: inst.keepDaily
} : {}, contains(inst, 'keepWeekly') ? {
  keepWeekly: inst.keepWeekly
} : {}, contains(inst, 'keepMonthly') ? {
  keepMonthly: inst.keepMonthly
} : {}, contains(inst, 'copy') ? {
  copy: inst.copy
} : {})]

var primaryTargets = [for inst in instances: {
  resourceId: inst.resourceId
  enabled: true
  accessType: inst.accessType
  identityResourceId: inst.identityResourceId
  container: inst.container
}]

// A missing standby falls back to its primary with enabled=false, so that every entry still names
// a valid scope: a module's scope expression must not fail even where its condition is false.
var standbyTargets = [for inst in instances: {
  resourceId: empty(inst.standby) ? inst.resourceId : inst.standby
  enabled: !empty(inst.standby)
  accessType: inst.accessType
  identityResourceId: inst.identityResourceId
  container: inst.container
}]

// Drill targets are restored into like standbys (same identity and container as their primary).
var drillTargets = [for inst in instances: {
  resourceId: empty(inst.drillTarget) ? inst.resourceId : inst.drillTarget
  enabled: !empty(inst.drillTarget)
  accessType: inst.accessType
  identityResourceId: inst.identityResourceId
  container: inst.container
}]

var accessTargets = concat(primaryTargets, standbyTargets, drillTargets)

// Every backup container: the default one, then each one an instance names. All are created, so each
// APIM identity can be granted on its own container rather than on the whole account.
var instanceContainers = [for inst in instances: inst.container]
var backupContainerNames = union([
  backupContainerName
], instanceContainers)

// The lifecycle backstop deletes a backup only well after the app would: beyond the longest retention
// any instance has (APIM's 30-day expiry plus the 7-day grace at least), by retentionBackstopDays.
var instanceMaxAgeDays = [for inst in protectedInstances: contains(inst, 'maxAgeDays') ? int(inst.maxAgeDays) : retentionMaxAgeDays]
// Grandfather-father-son rules keep backups for days, weeks or months: the backstop waits beyond the longest of
// them too (a week or a month more than the count, as the current period counts as the first).
var instanceGfsDays = [for inst in protectedInstances: max(
  contains(inst, 'keepDaily') ? int(inst.keepDaily) : retentionKeepDaily,
  7 * ((contains(inst, 'keepWeekly') ? int(inst.keepWeekly) : retentionKeepWeekly) + 1),
  31 * ((contains(inst, 'keepMonthly') ? int(inst.keepMonthly) : retentionKeepMonthly) + 1))]
var gfsDays = max(concat([
  retentionKeepDaily
  7 * (retentionKeepWeekly + 1)
  31 * (retentionKeepMonthly + 1)
], instanceGfsDays))
var backupBackstopDays = max(concat([
  gfsDays
  37
  retentionMaxAgeDays
], instanceMaxAgeDays)) + retentionBackstopDays

var instanceAccessTypes = [for inst in instances: inst.accessType]
var deployCopies = !empty(copyStorageLocation)
var usesAccessKey = storageAccessType == 'AccessKey' || contains(instanceAccessTypes, 'AccessKey')

// Who gets APIM DR Operator: the Function App's identity, then the operators.
var operatorPrincipals = [for id in operatorPrincipalIds: {
  principalId: id
  principalType: operatorPrincipalType
}]

var configRestorePrincipals = [for id in configRestorePrincipalIds: {
  principalId: id
  principalType: operatorPrincipalType
}]

var discoverySubscriptionList = empty(trim(discoverySubscriptionIds)) ? [] : split(replace(discoverySubscriptionIds, ' ', ''), ',')

// The custom APIM role is granted only where it is needed: on the protected, standby and drill
// instances (assignable at their resource groups) and the discovery subscriptions. Those may all lie
// in other subscriptions than this deployment's, where the role's definition lives (its GUID is seeded
// with this subscription, and a definition cannot move). ARM creates a definition at its first
// assignable scope (Role Definitions - Create Or Update), so the first one is this deployment's own
// resource group, where the backup roles are assignable too: same subscription or not, the definition
// is at home in its own assignable scopes. Assignable there grants nothing; only assignments grant.
// Scopes are lower-cased so that union() drops a resource group named twice in another case.
var targetResourceGroupScopes = [for t in accessTargets: '/subscriptions/${toLower(split(t.resourceId, '/')[2])}/resourceGroups/${toLower(split(t.resourceId, '/')[4])}']
var discoveryScopes = [for sub in discoverySubscriptionList: '/subscriptions/${toLower(sub)}']
var operatorGrantScopes = union(targetResourceGroupScopes, discoveryScopes)
var homeResourceGroupScope = '/subscriptions/${toLower(subscription().subscriptionId)}/resourceGroups/${toLower(rgName)}'
var operatorAssignableScopes = empty(operatorGrantScopes) ? [] : union([
  homeResourceGroupScope
], operatorGrantScopes)

// AccessKey mode: where the key's secret lives. Placeholders keep the module scope valid when unused.
var grantKeyVaultSecret = usesAccessKey && !empty(backupStorageKeyVaultResourceId) && !empty(backupStorageKeySecretUri)
var keyVaultIdParts = split(grantKeyVaultSecret ? backupStorageKeyVaultResourceId : '${subscription().id}/resourceGroups/${rgName}/providers/Microsoft.KeyVault/vaults/unused', '/')
var keySecretName = grantKeyVaultSecret ? split(backupStorageKeySecretUri, '/')[4] : 'unused'

// ---------------------------------------------------------------------------------------------
// Resource group and the Function App's identity
// ---------------------------------------------------------------------------------------------

resource rg 'Microsoft.Resources/resourceGroups@2022-09-01' = if(empty(resourceGroupName)) {
  name: rgName
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'apimdr-identity'
  scope: resourceGroup(rgName)
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}${resourceToken}'
    location: location
    tags: tags
  }
  dependsOn: [
    rg
  ]
}

// ---------------------------------------------------------------------------------------------
// Monitoring
// ---------------------------------------------------------------------------------------------

module monitoring 'monitor/monitoring.bicep' = {
  name: 'apimdr-monitoring'
  scope: resourceGroup(rgName)
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    appInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionDays
  }
  dependsOn: [
    rg
  ]
}

module jobAlerts 'monitor/job-alerts.bicep' = {
  name: 'apimdr-job-alerts'
  scope: resourceGroup(rgName)
  params: {
    appInsightsId: monitoring.outputs.appInsightsId
    actionGroupName: '${abbrs.insightsActionGroups}${resourceToken}'
    alertNamePrefix: '${abbrs.insightsScheduledQueryRules}${resourceToken}'
    location: location
    tags: tags
    webhookUrl: monitorAlertWebhookUrl
    emailAddress: alertEmailAddress
  }
}

module rpoAlerts 'monitor/rpo-alerts.bicep' = {
  name: 'apimdr-rpo-alerts'
  scope: resourceGroup(rgName)
  params: {
    appInsightsId: monitoring.outputs.appInsightsId
    actionGroupId: jobAlerts.outputs.actionGroupId
    alertNamePrefix: '${abbrs.insightsScheduledQueryRules}${resourceToken}'
    location: location
    tags: tags
  }
}

module statusWorkbook 'monitor/status-workbook.bicep' = {
  name: 'apimdr-status-workbook'
  scope: resourceGroup(rgName)
  params: {
    appInsightsId: monitoring.outputs.appInsightsId
    location: location
    tags: tags
  }
}

module drillAlerts 'monitor/drill-alerts.bicep' = {
  name: 'apimdr-drill-alerts'
  scope: resourceGroup(rgName)
  params: {
    appInsightsId: monitoring.outputs.appInsightsId
    actionGroupId: jobAlerts.outputs.actionGroupId
    alertNamePrefix: '${abbrs.insightsScheduledQueryRules}${resourceToken}'
    location: location
    tags: tags
  }
}

// ---------------------------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------------------------

module runtimeStorage 'storage/runtime-storage.bicep' = {
  name: 'apimdr-runtime-storage'
  scope: resourceGroup(rgName)
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
  }
  dependsOn: [
    rg
  ]
}

module backupStorage 'storage/backup-storage.bicep' = {
  name: 'apimdr-backup-storage'
  scope: resourceGroup(rgName)
  params: {
    name: '${abbrs.backupStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    skuName: backupStorageSku
    containerNames: backupContainerNames
    softDeleteDays: backupSoftDeleteDays
    versionRetentionDays: backupVersionRetentionDays
    immutabilityDays: backupImmutabilityDays
    backstopDeleteDays: backupBackstopDays
    networkDefaultAction: backupNetworkDefaultAction
    allowSharedKeyAccess: usesAccessKey
  }
  dependsOn: [
    rg
  ]
}

// The second account (optional): every succeeded backup is copied here by the app (dr_core/copies), so a
// restore can read the copy when the backup account's region is unreachable. The same module, so the same
// protections: geo-redundancy, versioning, soft delete, optional WORM, the lifecycle backstop, no CORS. Shared keys
// stay off: copies use identities only (apim-dr does not copy AccessKey instances).
module copyStorage 'storage/backup-storage.bicep' = if(deployCopies) {
  name: 'apimdr-copy-storage'
  scope: resourceGroup(rgName)
  params: {
    name: '${abbrs.copyStorageAccounts}${resourceToken}'
    location: deployCopies ? copyStorageLocation : location
    tags: tags
    skuName: backupStorageSku
    containerNames: backupContainerNames
    softDeleteDays: backupSoftDeleteDays
    versionRetentionDays: backupVersionRetentionDays
    immutabilityDays: backupImmutabilityDays
    backstopDeleteDays: backupBackstopDays
    networkDefaultAction: backupNetworkDefaultAction
    allowSharedKeyAccess: false
  }
  dependsOn: [
    rg
  ]
}

// ---------------------------------------------------------------------------------------------
// Function App
// ---------------------------------------------------------------------------------------------

module functionApp 'app/function-app.bicep' = {
  name: 'apimdr-function-app'
  scope: resourceGroup(rgName)
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    runtimeStorageBlobEndpoint: runtimeStorage.outputs.blobEndpoint
    runtimeStorageQueueEndpoint: runtimeStorage.outputs.queueEndpoint
    runtimeStorageTableEndpoint: runtimeStorage.outputs.tableEndpoint
    deploymentContainerName: runtimeStorage.outputs.deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    maximumInstanceCount: functionMaximumInstanceCount
    instanceMemoryMB: functionInstanceMemoryMB
    backupSchedule: backupSchedule
    instancesJson: string(appInstances)
    discoverySubscriptionIds: join(discoverySubscriptionList, ',')
    discoveryTag: discoveryTag
    backupStorageAccountName: backupStorage.outputs.name
    backupContainerName: backupContainerName
    backupBlobEndpoint: backupStorage.outputs.blobEndpoint
    storageAccessType: storageAccessType
    storageIdentityClientId: apimIdentityClientId
    backupStorageKeySecretUri: usesAccessKey ? backupStorageKeySecretUri : ''
    armEndpoint: armEndpoint
    webhookUrl: alertWebhookUrl
    backupTimeoutMinutes: backupTimeoutMinutes
    restoreTimeoutMinutes: restoreTimeoutMinutes
    maxPollDelaySeconds: maxPollDelaySeconds
    expiryMarginHours: expiryMarginHours
    startLeaseSeconds: startLeaseSeconds
    recovery: recovery
    snapshotTimeoutMinutes: snapshotTimeoutMinutes
    snapshotReadsPerSecond: snapshotReadsPerSecond
    rpoHours: rpoHours
    retentionKeepLast: retentionKeepLast
    retentionMaxAgeDays: retentionMaxAgeDays
    drillEveryDays: drillEveryDays
    backupMaxAttempts: backupMaxAttempts
    attemptBackoffSeconds: attemptBackoffSeconds
    retentionKeepDaily: retentionKeepDaily
    retentionKeepWeekly: retentionKeepWeekly
    retentionKeepMonthly: retentionKeepMonthly
    copyStorageAccountName: deployCopies ? copyStorage.outputs.name : ''
    copyBlobEndpoint: deployCopies ? copyStorage.outputs.blobEndpoint : ''
  }
}

// ---------------------------------------------------------------------------------------------
// Custom roles (subscription scope; tenant-wide objects, removed by hand after `azd down`)
// ---------------------------------------------------------------------------------------------

module customRoles 'rbac/custom-roles.bicep' = {
  name: 'apimdr-custom-roles-${resourceToken}'
  params: {
    environmentName: environmentName
    resourceToken: resourceToken
    operatorAssignableScopes: operatorAssignableScopes
    backupResourceGroupId: '${subscription().id}/resourceGroups/${rgName}'
  }
  dependsOn: [
    rg
  ]
}

// ---------------------------------------------------------------------------------------------
// Role assignments of the Function App's identity (and of the operators, if listed)
// ---------------------------------------------------------------------------------------------

// Runtime storage: host leases and the deployment package (blob), the work queue, the jobs table.
module runtimeStorageAccess 'rbac/storage-access.bicep' = {
  name: 'apimdr-runtime-storage-access'
  scope: resourceGroup(rgName)
  params: {
    storageAccountName: runtimeStorage.outputs.name
    principalId: identity.outputs.principalId
    roleDefinitionIds: [
      roles.storageBlobDataOwner
      roles.storageQueueDataContributor
      roles.storageTableDataContributor
    ]
  }
}

// Backup account: read backups and write their metadata, no delete (APIM DR Backup Data);
// read, write and query their index tags and read the blob service properties for the CORS check
// (APIM DR Backup Catalog). No built-in role fits: Blob Data Contributor deletes and has no tags/*.
module backupStorageAccess 'rbac/storage-access.bicep' = {
  name: 'apimdr-backup-storage-access'
  scope: resourceGroup(rgName)
  params: {
    storageAccountName: backupStorage.outputs.name
    principalId: identity.outputs.principalId
    roleDefinitionIds: [
      customRoles.outputs.backupDataRoleId
      customRoles.outputs.backupCatalogRoleId
    ]
  }
}

// Backup account, retention only: delete backups past their instance's retention (the daily prune,
// dr_core/retention/pruner.py). A role and an assignment of their own, so this one destructive permission is
// reviewed or revoked alone; without it the prune deletes nothing (AuthorizationPermissionMismatch).
module backupRetentionAccess 'rbac/storage-access.bicep' = {
  name: 'apimdr-backup-retention-access'
  scope: resourceGroup(rgName)
  params: {
    storageAccountName: backupStorage.outputs.name
    principalId: identity.outputs.principalId
    roleDefinitionIds: [
      customRoles.outputs.backupRetentionRoleId
    ]
  }
}

// Copy account (optional), the Function App: write copies (server-side: Put Blob From URL, whose source it reads
// with its blobs/read on the backup account), read them back to verify them, set and query their index tags, read
// the blob service's CORS rules (a restore from the copy); and, in an assignment of its own as on the backup
// account, delete copies past retention.
module copyStorageAccess 'rbac/storage-access.bicep' = if(deployCopies) {
  name: 'apimdr-copy-storage-access'
  scope: resourceGroup(rgName)
  params: {
    storageAccountName: deployCopies ? copyStorage.outputs.name : ''
    principalId: identity.outputs.principalId
    roleDefinitionIds: [
      customRoles.outputs.backupDataRoleId
      customRoles.outputs.backupCatalogRoleId
    ]
  }
}

module copyRetentionAccess 'rbac/storage-access.bicep' = if(deployCopies) {
  name: 'apimdr-copy-retention-access'
  scope: resourceGroup(rgName)
  params: {
    storageAccountName: deployCopies ? copyStorage.outputs.name : ''
    principalId: identity.outputs.principalId
    roleDefinitionIds: [
      customRoles.outputs.backupRetentionRoleId
    ]
  }
}

// Application Insights with local auth off: telemetry is sent with the identity.
module appInsightsAccess 'rbac/app-insights-access.bicep' = {
  name: 'apimdr-app-insights-access'
  scope: resourceGroup(rgName)
  params: {
    appInsightsName: monitoring.outputs.appInsightsName
    principalId: identity.outputs.principalId
    roleDefinitionId: roles.monitoringMetricsPublisher
  }
}

// APIM DR Operator (read, backup, restore, list APIs/products/named values) on each protected,
// standby and drill instance, in its own resource group and subscription, for the Function App and
// the operators. Serial, so an instance listed twice (a standby or drill instance shared by two
// primaries) is granted one deployment at a time.
@batchSize(1)
module apimOperatorAccess 'rbac/apim-operator-access.bicep' = [for (t, i) in accessTargets: if(t.enabled) {
  name: 'apimdr-operator-${i}-${resourceToken}'
  scope: resourceGroup(split(t.resourceId, '/')[2], split(t.resourceId, '/')[4])
  params: {
    apimName: last(split(t.resourceId, '/'))
    principals: concat([
      {
        principalId: identity.outputs.principalId
        principalType: 'ServicePrincipal'
      }
    ], operatorPrincipals)
    roleDefinitionId: customRoles.outputs.operatorRoleId
  }
}]

// Discovery: the same role on each discovery subscription.
module discoveryOperatorAccess 'rbac/subscription-operator-access.bicep' = [for (sub, i) in discoverySubscriptionList: {
  name: 'apimdr-discovery-${i}-${resourceToken}'
  scope: subscription(sub)
  params: {
    principals: concat([
      {
        principalId: identity.outputs.principalId
        principalType: 'ServicePrincipal'
      }
    ], operatorPrincipals)
    roleDefinitionId: customRoles.outputs.operatorRoleId
  }
}]

// APIM DR Configuration Restore on the same instances: what a snapshot restore writes (the Function App runs
// the job; the people in configRestorePrincipalIds may start one from the CLI). Serial, like the one above.
@batchSize(1)
module apimConfigRestoreAccess 'rbac/apim-operator-access.bicep' = [for (t, i) in accessTargets: if(t.enabled) {
  name: 'apimdr-restore-${i}-${resourceToken}'
  scope: resourceGroup(split(t.resourceId, '/')[2], split(t.resourceId, '/')[4])
  params: {
    apimName: last(split(t.resourceId, '/'))
    principals: concat([
      {
        principalId: identity.outputs.principalId
        principalType: 'ServicePrincipal'
      }
    ], configRestorePrincipals)
    roleDefinitionId: customRoles.outputs.configRestoreRoleId
  }
}]

// Operators: what the operator CLI does when the Function App is down. On the backup account the
// Function App's data roles without delete: find and check backups (index tags, CORS rules), and
// label a backup the CLI followed to its end (`--wait`: tags, metadata, manifest). No retention role:
// operators prune with --dry-run only.
module operatorBackupAccess 'rbac/storage-access.bicep' = [for (id, i) in operatorPrincipalIds: {
  name: 'apimdr-operator-backup-${i}'
  scope: resourceGroup(rgName)
  params: {
    storageAccountName: backupStorage.outputs.name
    principalId: id
    principalType: operatorPrincipalType
    roleDefinitionIds: [
      customRoles.outputs.backupDataRoleId
      customRoles.outputs.backupCatalogRoleId
    ]
  }
}]

// Operators on the copy account: the same as on the backup account (the CLI's preflight and catalog read the copy
// when the backup account is unreachable). No retention role.
module operatorCopyAccess 'rbac/storage-access.bicep' = [for (id, i) in operatorPrincipalIds: if(deployCopies) {
  name: 'apimdr-operator-copy-${i}'
  scope: resourceGroup(rgName)
  params: {
    storageAccountName: deployCopies ? copyStorage.outputs.name : ''
    principalId: id
    principalType: operatorPrincipalType
    roleDefinitionIds: [
      customRoles.outputs.backupDataRoleId
      customRoles.outputs.backupCatalogRoleId
    ]
  }
}]

// Operators on the runtime account: the jobs table (job rows, the restore lock, records) and the work
// queues (a job the CLI starts is queued like the Function App's). No blob role: host leases and the
// deployment package are the Function App's alone.
module operatorRuntimeAccess 'rbac/storage-access.bicep' = [for (id, i) in operatorPrincipalIds: {
  name: 'apimdr-operator-runtime-${i}'
  scope: resourceGroup(rgName)
  params: {
    storageAccountName: runtimeStorage.outputs.name
    principalId: id
    principalType: operatorPrincipalType
    roleDefinitionIds: [
      roles.storageQueueDataContributor
      roles.storageTableDataContributor
    ]
  }
}]

// AccessKey mode: read the one secret that holds the backup account key.
module keyVaultAccess 'rbac/key-vault-secret-access.bicep' = if(grantKeyVaultSecret) {
  name: 'apimdr-key-vault-access-${resourceToken}'
  scope: resourceGroup(keyVaultIdParts[2], keyVaultIdParts[4])
  params: {
    vaultName: last(keyVaultIdParts)
    secretName: keySecretName
    principalId: identity.outputs.principalId
    roleDefinitionId: roles.keyVaultSecretsUser
  }
}

// ---------------------------------------------------------------------------------------------
// Role assignments of the APIM instances' identities on the backup account
// ---------------------------------------------------------------------------------------------

// Storage Blob Data Contributor for each protected, standby and drill instance that reaches the account
// with a managed identity (its system-assigned identity, or the user-assigned one it names), scoped
// to the container it backs up to and restores from, not to the whole account.
// Serial, because instances that share a user-assigned identity and container share one assignment.
@batchSize(1)
module apimBackupAccess 'rbac/apim-backup-access.bicep' = [for (t, i) in accessTargets: if(t.enabled && t.accessType != 'AccessKey') {
  name: 'apimdr-apim-backup-${i}-${resourceToken}'
  scope: resourceGroup(rgName)
  params: {
    storageAccountName: backupStorage.outputs.name
    apimResourceId: t.resourceId
    containerName: t.container
    userAssignedIdentityResourceId: t.accessType == 'UserAssignedManagedIdentity' ? t.identityResourceId : ''
    roleDefinitionId: roles.storageBlobDataContributor
  }
}]

// Storage Blob Data Reader on the same containers of the copy account: a restore from the copy (when the backup
// account is unreachable) names the copy account in its body, and APIM reads the backup with the target's own
// identity. Reading is all a restore needs; APIM never writes a backup to the copy account.
@batchSize(1)
module apimCopyAccess 'rbac/apim-backup-access.bicep' = [for (t, i) in accessTargets: if(deployCopies && t.enabled && t.accessType != 'AccessKey') {
  name: 'apimdr-apim-copy-${i}-${resourceToken}'
  scope: resourceGroup(rgName)
  params: {
    storageAccountName: deployCopies ? copyStorage.outputs.name : ''
    apimResourceId: t.resourceId
    containerName: t.container
    userAssignedIdentityResourceId: t.accessType == 'UserAssignedManagedIdentity' ? t.identityResourceId : ''
    roleDefinitionId: roles.storageBlobDataReader
  }
}]

// ---------------------------------------------------------------------------------------------
// Outputs (azd stores them in the environment)
// ---------------------------------------------------------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rgName
output AZURE_FUNCTION_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = functionApp.outputs.uri
output APIM_DR_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output APIM_DR_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output APIM_DR_BACKUP_STORAGE_ACCOUNT string = backupStorage.outputs.name
output APIM_DR_COPY_STORAGE_ACCOUNT string = deployCopies ? copyStorage.outputs.name : ''
output APIM_DR_OPERATOR_ROLE_ID string = customRoles.outputs.operatorRoleId
output APIM_DR_CONFIG_RESTORE_ROLE_ID string = customRoles.outputs.configRestoreRoleId
