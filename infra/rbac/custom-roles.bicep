// The two custom roles of apim-dr, defined at subscription scope (role definitions are tenant-wide
// objects; `azd down` does not remove them: see docs/deploy.md).
//
// APIM DR Operator: exactly the three actions the Function App needs on an APIM instance:
//   read it (tier, state, identity; polling a running operation), start a backup, start a restore.
//   The built-in API Management Service Operator Role would also allow write, delete, hostname and
//   certificate changes; Contributor allows everything.
// APIM DR Backup Index Tags: read, write and query blob index tags. Storage Blob Data Contributor
//   (given on the backup account too) has blobs/read|write|delete but no blobs/tags/*; Storage Blob
//   Data Owner would add them along with blobs/* (ACLs, ownership, immutability super-user).

targetScope = 'subscription'

@description('Name of the azd environment (part of the role names, which must be unique in the tenant).')
param environmentName string

@description('Token that makes the role names and GUIDs unique per subscription, environment and region.')
param resourceToken string

@description('Scopes where APIM DR Operator can be assigned: the resource groups of the protected and standby instances, and the discovery subscriptions. Empty: the role is not created.')
param operatorAssignableScopes array

@description('Resource ID of the resource group that holds the backup account (the only scope of the index-tags role).')
param backupResourceGroupId string

var createOperatorRole = !empty(operatorAssignableScopes)

resource operatorRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if(createOperatorRole) {
  name: guid(subscription().id, 'apim-dr-operator', resourceToken)
  properties: {
    roleName: 'APIM DR Operator (${environmentName}-${resourceToken})'
    description: 'apim-dr: read API Management instances and start their backups and restores. Nothing else.'
    type: 'customRole'
    permissions: [
      {
        actions: [
          'Microsoft.ApiManagement/service/read'
          'Microsoft.ApiManagement/service/backup/action'
          'Microsoft.ApiManagement/service/restore/action'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: operatorAssignableScopes
  }
}

resource backupIndexTagsRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'apim-dr-backup-index-tags', resourceToken)
  properties: {
    roleName: 'APIM DR Backup Index Tags (${environmentName}-${resourceToken})'
    description: 'apim-dr: read, write and find blob index tags of the backups. No blob data access.'
    type: 'customRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/read'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/write'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/filter/action'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: [
      backupResourceGroupId
    ]
  }
}

@description('GUID of APIM DR Operator; empty when no scope needs it.')
output operatorRoleId string = createOperatorRole ? operatorRole.name : ''

@description('GUID of APIM DR Backup Index Tags.')
output backupIndexTagsRoleId string = backupIndexTagsRole.name
