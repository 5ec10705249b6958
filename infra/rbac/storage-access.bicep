// Data roles for one principal (an identity, a user or a group) on one storage account in this
// resource group.

@description('Name of the storage account.')
param storageAccountName string

@description('Object ID of the principal.')
param principalId string

@allowed([
  'ServicePrincipal'
  'Group'
  'User'
])
@description('Kind of principal: ServicePrincipal for managed identities.')
param principalType string = 'ServicePrincipal'

@description('Role definition GUIDs to assign: entries of infra/roles.json or custom role GUIDs.')
param roleDefinitionIds array

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleDefinitionId in roleDefinitionIds: {
  name: guid(storage.id, principalId, roleDefinitionId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: principalType
  }
}]
