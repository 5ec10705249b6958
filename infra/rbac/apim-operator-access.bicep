// APIM DR Operator on one APIM instance for the Function App's identity (and the operators, if
// any). Deployed into the instance's own resource group (any subscription of the tenant), so the
// assignments are scoped to the instance alone, not to its resource group.

@description('Name of the APIM instance in this resource group.')
param apimName string

@description('Who gets the role: objects {principalId, principalType}; the Function App\'s identity first.')
param principals array

@description('GUID of the APIM DR Operator custom role.')
param roleDefinitionId string

resource apim 'Microsoft.ApiManagement/service@2024-05-01' existing = {
  name: apimName
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principal in principals: {
  name: guid(apim.id, principal.principalId, roleDefinitionId)
  scope: apim
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principal.principalId
    principalType: principal.principalType
  }
}]
