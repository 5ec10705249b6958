// Storage Blob Data Contributor for one APIM instance's identity, scoped to the backup container the
// instance uses: the instance writes its backup there and reads it back on restore (APIM's DR
// documentation names this role; granting it on the container rather than the whole account works
// for APIM backups, azure-powershell #23411). The identity is the instance's system-assigned one, or
// the user-assigned identity given; either may live in another resource group or subscription.
//
// The assignment name is built from the instance (or identity) resource ID, not from the principal
// ID, because the principal ID is only known at run time and a role assignment name must be known
// when the deployment starts.

@description('Name of the backup storage account in this resource group.')
param storageAccountName string

@description('Backup container (in that account, created by backup-storage.bicep) the instance writes to and restores from; the role is granted on it alone.')
param containerName string

@description('Resource ID of the APIM instance.')
param apimResourceId string

@description('Resource ID of the user-assigned identity the instance uses for storage. Empty: its system-assigned identity.')
param userAssignedIdentityResourceId string = ''

@description('Role definition GUID, from infra/roles.json: Storage Blob Data Contributor on the backup account, Storage Blob Data Reader on the copy account.')
param roleDefinitionId string

var useSystemIdentity = empty(userAssignedIdentityResourceId)
var apimIdParts = split(apimResourceId, '/')
// A placeholder keeps the scope valid when no user-assigned identity is used (never read then).
var identityIdParts = split(useSystemIdentity ? apimResourceId : userAssignedIdentityResourceId, '/')

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: containerName
}

resource apim 'Microsoft.ApiManagement/service@2024-05-01' existing = {
  name: last(apimIdParts)
  scope: resourceGroup(apimIdParts[2], apimIdParts[4])
}

resource userIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: last(identityIdParts)
  scope: resourceGroup(identityIdParts[2], identityIdParts[4])
}

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(container.id, useSystemIdentity ? apimResourceId : userAssignedIdentityResourceId, roleDefinitionId)
  scope: container
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: useSystemIdentity ? apim.identity.principalId : userIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

output principalId string = useSystemIdentity ? apim.identity.principalId : userIdentity.properties.principalId
