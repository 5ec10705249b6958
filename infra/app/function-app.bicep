// The Function App: Flex Consumption (FC1, Linux), Python 3.11, the user-assigned identity for
// everything, HTTPS only, TLS 1.2, FTP and basic-auth publishing off (through the two
// basicPublishingCredentialsPolicies: Flex Consumption rejects siteConfig.ftpsState). The app code deploys from
// the repository root through azd (service `api`) into the deployment container.
//
// App settings: every setting the code reads (dr_core/kernel/settings.py SETTINGS) except the local-only
// connection string AzureWebJobsStorage, plus the two the Functions host reads for Application
// Insights. None of the settings Flex Consumption rejects (FUNCTIONS_WORKER_RUNTIME,
// FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE, WEBSITE_TIME_ZONE, ...): the runtime is
// set in functionAppConfig.runtime instead. tests/infra checks both lists against the code.

@description('Name of the Function App.')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Region of the plan and the app.')
param location string

@description('Tags of the plan and the app (the app also gets azd-service-name: api).')
param tags object

@description('Resource ID of the Function App\'s user-assigned identity.')
param identityId string

@description('Client ID of that identity.')
param identityClientId string

@description('Blob endpoint of the runtime storage account (https://<account>.blob.core.windows.net/).')
param runtimeStorageBlobEndpoint string

@description('Queue endpoint of the runtime storage account.')
param runtimeStorageQueueEndpoint string

@description('Table endpoint of the runtime storage account.')
param runtimeStorageTableEndpoint string

@description('Container of the runtime storage account that holds the deployment package.')
param deploymentContainerName string

@description('Application Insights connection string (no secret: local auth is off, ingestion needs the identity).')
param appInsightsConnectionString string

@minValue(40)
@maxValue(1000)
@description('Most instances the app scales out to.')
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
@description('Memory of each instance, in MB.')
param instanceMemoryMB int = 2048

@description('BACKUP_SCHEDULE: NCRONTAB schedule of backups (UTC).')
param backupSchedule string

@description('APIM_DR_INSTANCES: JSON list of protected instances, as the app reads it.')
param instancesJson string

@description('APIM_DR_DISCOVERY_SUBSCRIPTIONS: comma-separated subscription IDs searched for tagged instances.')
param discoverySubscriptionIds string

@description('APIM_DR_DISCOVERY_TAG: tag (name=value) that marks an instance for backup.')
param discoveryTag string

@description('APIM_DR_BACKUP_STORAGE_ACCOUNT: name of the backup storage account.')
param backupStorageAccountName string

@description('APIM_DR_BACKUP_CONTAINER: default backup container.')
param backupContainerName string

@description('APIM_DR_BACKUP_BLOB_ENDPOINT: blob endpoint of the backup account.')
param backupBlobEndpoint string

@description('APIM_DR_STORAGE_ACCESS_TYPE: how APIM reaches the backup account by default.')
param storageAccessType string

@description('APIM_DR_STORAGE_IDENTITY_CLIENT_ID: client ID of the APIM instances\' user-assigned identity (UserAssignedManagedIdentity).')
param storageIdentityClientId string

@description('Key Vault secret URI of the backup account key (AccessKey only). Empty: APIM_DR_BACKUP_STORAGE_KEY is not set.')
param backupStorageKeySecretUri string = ''

@description('APIM_DR_ARM_ENDPOINT: Azure Resource Manager endpoint, without a trailing slash.')
param armEndpoint string

@secure()
@description('APIM_DR_WEBHOOK_URL: webhook for failure, time-out and RPO announcements. Empty: log only.')
param webhookUrl string = ''

@description('APIM_DR_BACKUP_TIMEOUT_MINUTES.')
param backupTimeoutMinutes int

@description('APIM_DR_RESTORE_TIMEOUT_MINUTES.')
param restoreTimeoutMinutes int

@description('APIM_DR_MAX_POLL_DELAY_SECONDS.')
param maxPollDelaySeconds int

@description('APIM_DR_EXPIRY_MARGIN_HOURS.')
param expiryMarginHours int

@description('APIM_DR_START_LEASE_SECONDS.')
param startLeaseSeconds int

@description('APIM_DR_RECOVERY.')
param recovery string

@description('APIM_DR_SNAPSHOT_TIMEOUT_MINUTES.')
param snapshotTimeoutMinutes int

@description('APIM_DR_SNAPSHOT_READS_PER_SECOND.')
param snapshotReadsPerSecond int

@description('APIM_DR_RPO_HOURS.')
param rpoHours int

@description('APIM_DR_RETENTION_KEEP_LAST.')
param retentionKeepLast int

@description('APIM_DR_RETENTION_MAX_AGE_DAYS.')
param retentionMaxAgeDays int

@description('APIM_DR_DRILL_EVERY_DAYS.')
param drillEveryDays int

@description('APIM_DR_BACKUP_MAX_ATTEMPTS.')
param backupMaxAttempts int

@description('APIM_DR_ATTEMPT_BACKOFF_SECONDS.')
param attemptBackoffSeconds int

@description('APIM_DR_RETENTION_KEEP_DAILY.')
param retentionKeepDaily int

@description('APIM_DR_RETENTION_KEEP_WEEKLY.')
param retentionKeepWeekly int

@description('APIM_DR_RETENTION_KEEP_MONTHLY.')
param retentionKeepMonthly int

@description('APIM_DR_COPY_STORAGE_ACCOUNT: the second account backups are copied to. Empty: no copies.')
param copyStorageAccountName string = ''

@description('APIM_DR_COPY_BLOB_ENDPOINT: blob endpoint of that account. Empty: no copies.')
param copyBlobEndpoint string = ''

var appSettings = union({
  // Host storage through the identity: no AzureWebJobsStorage connection string exists in Azure.
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: runtimeStorageBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: runtimeStorageQueueEndpoint
  AzureWebJobsStorage__tableServiceUri: runtimeStorageTableEndpoint
  // Read by the Functions host: telemetry sent with the identity (local auth is off).
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // Read by the app (dr_core/kernel/settings.py).
  AZURE_CLIENT_ID: identityClientId
  BACKUP_SCHEDULE: backupSchedule
  APIM_DR_INSTANCES: instancesJson
  APIM_DR_DISCOVERY_SUBSCRIPTIONS: discoverySubscriptionIds
  APIM_DR_DISCOVERY_TAG: discoveryTag
  APIM_DR_BACKUP_STORAGE_ACCOUNT: backupStorageAccountName
  APIM_DR_BACKUP_CONTAINER: backupContainerName
  APIM_DR_BACKUP_BLOB_ENDPOINT: backupBlobEndpoint
  APIM_DR_STORAGE_ACCESS_TYPE: storageAccessType
  APIM_DR_STORAGE_IDENTITY_CLIENT_ID: storageIdentityClientId
  APIM_DR_ARM_ENDPOINT: armEndpoint
  APIM_DR_WEBHOOK_URL: webhookUrl
  APIM_DR_BACKUP_TIMEOUT_MINUTES: string(backupTimeoutMinutes)
  APIM_DR_RESTORE_TIMEOUT_MINUTES: string(restoreTimeoutMinutes)
  APIM_DR_MAX_POLL_DELAY_SECONDS: string(maxPollDelaySeconds)
  APIM_DR_EXPIRY_MARGIN_HOURS: string(expiryMarginHours)
  APIM_DR_START_LEASE_SECONDS: string(startLeaseSeconds)
  APIM_DR_RECOVERY: recovery
  APIM_DR_SNAPSHOT_TIMEOUT_MINUTES: string(snapshotTimeoutMinutes)
  APIM_DR_SNAPSHOT_READS_PER_SECOND: string(snapshotReadsPerSecond)
  APIM_DR_RPO_HOURS: string(rpoHours)
  APIM_DR_RETENTION_KEEP_LAST: string(retentionKeepLast)
  APIM_DR_RETENTION_MAX_AGE_DAYS: string(retentionMaxAgeDays)
  APIM_DR_DRILL_EVERY_DAYS: string(drillEveryDays)
  APIM_DR_BACKUP_MAX_ATTEMPTS: string(backupMaxAttempts)
  APIM_DR_ATTEMPT_BACKOFF_SECONDS: string(attemptBackoffSeconds)
  APIM_DR_RETENTION_KEEP_DAILY: string(retentionKeepDaily)
  APIM_DR_RETENTION_KEEP_WEEKLY: string(retentionKeepWeekly)
  APIM_DR_RETENTION_KEEP_MONTHLY: string(retentionKeepMonthly)
  APIM_DR_COPY_STORAGE_ACCOUNT: copyStorageAccountName
  APIM_DR_COPY_BLOB_ENDPOINT: copyBlobEndpoint
}, empty(backupStorageKeySecretUri) ? {} : {
  // AccessKey only: a Key Vault reference resolved with the identity (keyVaultReferenceIdentity).
  APIM_DR_BACKUP_STORAGE_KEY: '@Microsoft.KeyVault(SecretUri=${backupStorageKeySecretUri})'
})

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy of Flex Consumption depends on the region; the app keeps no state in memory and resumes its jobs from the jobs table after an outage.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: The restore and status endpoints are called over the internet during an incident (HTTPS only, function keys); azd deploys through the public SCM endpoint with an Entra token.
  // checkov:skip=CKV_AZURE_17: Callers authenticate with function keys; requiring client certificates would make every operator tool hold one during an incident.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales to zero by design; an always-ready instance would cost money for work that runs a few times a day and tolerates a cold start.
  // checkov:skip=CKV_AZURE_213: No HTTP health probe on a scale-to-zero plan: probes would keep an instance running. Job health is watched by the alert rules on the job log.
  // checkov:skip=CKV_AZURE_78: Flex Consumption rejects siteConfig.ftpsState; FTP (and SCM) basic-auth publishing is turned off by the basicPublishingCredentialsPolicies below instead.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      http20Enabled: true
      appSettings: [for setting in items(appSettings): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${runtimeStorageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No basic-auth publishing: azd deploys with an Entra token. Flex Consumption wants a location on
// these child resources (the site's).
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  location: location
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  location: location
  properties: {
    allow: false
  }
}

output name string = site.name
output id string = site.id
output uri string = 'https://${site.properties.defaultHostName}'
