// AccessKey mode: Key Vault Secrets User for the Function App on the one secret that holds the
// backup account key (not on the whole vault). The vault must use the Azure RBAC permission model.

@description('Name of the Key Vault in this resource group.')
param vaultName string

@description('Name of the secret.')
param secretName string

@description('Object ID of the Function App\'s identity.')
param principalId string

@description('Role definition GUID (Key Vault Secrets User, from infra/roles.json).')
param roleDefinitionId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: secretName
}

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(secret.id, principalId, roleDefinitionId)
  scope: secret
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
