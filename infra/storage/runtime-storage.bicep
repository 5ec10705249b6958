// The Function App's own storage: host state (timer leases, the deployment package), the work
// queue and the jobs table. Reached only with the app's identity: shared keys are off, so no
// connection string or key exists anywhere. The queue and table names are the ones the code uses
// (dr_core/kernel/settings.py: WORK_QUEUE, JOBS_TABLE); a test checks they agree.

@description('Name of the storage account (3-24 lowercase letters and digits).')
param name string

@description('Region of the account.')
param location string

@description('Tags of the account.')
param tags object

@description('Blob container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

// Each checkov skip comment sits inside the resource it applies to, with its reason.
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Flex Consumption without VNet integration reaches its host storage over public endpoints, so the default action must stay Allow; access needs an Entra token (shared keys are off).
  // checkov:skip=CKV_AZURE_59: Same reason: public network access stays on for the Function App; every request needs the app identity's token.
  // checkov:skip=CKV_AZURE_206: Locally redundant on purpose: this account holds transient host state and job rows; the backups live in the geo-redundant backup account.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    isLocalUserEnabled: false
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: 'Enabled'
    supportsHttpsTrafficOnly: true
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// dr_core/azure/staging.py STAGING_CONTAINER: scratch space of work that spans invocations (a configuration
// snapshot's pending reads and the items read so far), deleted by the job when it ends.
resource stagingContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: 'apimdr-staging'
  properties: {
    publicAccess: 'None'
  }
}

// A backstop for scratch blobs a job could not delete (it timed out, or its host was replaced mid-step).
resource stagingLifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'apimdr-staging-cleanup'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                'apimdr-staging/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: 7
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// dr_core.kernel.settings.WORK_QUEUE
resource workQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'apim-dr-jobs'
}

// Where the host moves a message after maxDequeueCount failed attempts (<queue>-poison).
resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'apim-dr-jobs-poison'
}

// dr_core.kernel.settings.POLL_QUEUE: polls of running operations, apart from starts so they never wait behind them.
resource pollQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'apim-dr-polls'
}

resource pollPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: 'apim-dr-polls-poison'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// dr_core.kernel.settings.JOBS_TABLE
resource jobsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: 'apimdrjobs'
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output deploymentContainerName string = deploymentContainer.name
