// The backup storage account. APIM writes backups here and reads them back on restore; the
// Function App reads them and writes their metadata and index tags.
//   - Geo-redundant (GRS/GZRS, optionally read-access), so backups outlive a regional outage.
//   - Blob versioning and soft delete (blobs and containers), so a deleted or overwritten backup
//     can be recovered; a lifecycle rule removes old versions.
//   - A lifecycle backstop: backups (blobs carrying apim-dr's index tag apimdr_state=succeeded, and
//     nothing else) are deleted backstopDeleteDays after creation, well after the app's own retention
//     (dr_core/retention/pruner.py) would have deleted them, in case it does not run.
//   - Optional version-level WORM retention (immutabilityDays > 0).
//   - No public blob access, TLS 1.2, HTTPS only, and no CORS rules on the blob service: APIM's
//     backup call fails with InvalidParameters when the blob service has CORS rules.
//   - Network rules always let trusted Azure services through (APIM with its system-assigned
//     identity is one).
//   - Shared-key access is off unless an instance uses AccessKey (APIM then signs with the key).

@description('Name of the storage account (3-24 lowercase letters and digits).')
param name string

@description('Region of the account.')
param location string

@description('Tags of the account.')
param tags object

@allowed([
  'Standard_GRS'
  'Standard_RAGRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
])
@description('Redundancy: geo-redundant options only.')
param skuName string = 'Standard_GZRS'

@description('Backup containers to create: the default one and every container an instance names.')
param containerNames array = [
  'apim-backups'
]

@minValue(1)
@maxValue(365)
@description('Soft delete retention of blobs and containers, in days.')
param softDeleteDays int = 14

@minValue(1)
@maxValue(3650)
@description('Days after which previous blob versions are deleted.')
param versionRetentionDays int = 30

@minValue(0)
@maxValue(146000)
@description('Version-level WORM retention of the backup containers in days; 0 = off. Takes effect only when a container is first created (an existing container cannot be switched to version-level immutability by a deployment).')
param immutabilityDays int = 0

@minValue(31)
@maxValue(99999)
@description('Days after creation when the lifecycle backstop deletes a backup (a blob tagged apimdr_state=succeeded). Keep it beyond every instance\'s retention (maxAgeDays): main.bicep passes the longest plus retentionBackstopDays.')
param backstopDeleteDays int = 67

@allowed([
  'Allow'
  'Deny'
])
@description('Default network action. Trusted Azure services are always let through.')
param networkDefaultAction string = 'Allow'

@description('Allow shared-key (account key) access. Only for APIM instances that use accessType AccessKey.')
param allowSharedKeyAccess bool = false

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: The default action is a parameter (backupNetworkDefaultAction, default Allow): the Function App on Flex Consumption without VNet integration cannot pass the firewall, while APIM's trusted-service access always can (bypass AzureServices).
  // checkov:skip=CKV_AZURE_59: Public network access stays on: APIM's backup service (as a trusted service) and the Function App both reach the account over its public endpoint; this template sets up no private endpoint.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: allowSharedKeyAccess
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    isLocalUserEnabled: false
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: 'Enabled'
    supportsHttpsTrafficOnly: true
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: networkDefaultAction
      ipRules: []
      virtualNetworkRules: []
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    isVersioningEnabled: true
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteDays
    }
    // APIM refuses to back up to an account whose blob service has CORS rules.
    cors: {
      corsRules: []
    }
  }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for containerName in containerNames: {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
    immutableStorageWithVersioning: {
      enabled: immutabilityDays > 0
    }
  }
}]

// Default version-level retention of every blob version in each container. Created unlocked:
// lock it once tested (az storage container immutability-policy lock).
resource containerRetention 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = [for (containerName, i) in containerNames: if(immutabilityDays > 0) {
  parent: containers[i]
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: immutabilityDays
    allowProtectedAppendWrites: false
  }
}]

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-old-backup-versions'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
            }
            actions: {
              version: {
                delete: {
                  daysAfterCreationGreaterThan: versionRetentionDays
                }
              }
            }
          }
        }
        {
          // The app's tag (dr_core/catalog/tags.py TAG_STATE) selects backups only; nothing else in the
          // account is touched. With versioning on, the deleted backup becomes a previous version,
          // which the rule above removes, and soft delete keeps that for softDeleteDays more.
          name: 'delete-backups-past-retention'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              blobIndexMatch: [
                {
                  name: 'apimdr_state'
                  op: '=='
                  value: 'succeeded'
                }
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterCreationGreaterThan: backstopDeleteDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    blobService
  ]
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output containerNames array = containerNames
