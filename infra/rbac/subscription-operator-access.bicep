// APIM DR Operator on a whole subscription, for discovery by tag: the app lists the subscription's
// APIM instances and backs up the tagged ones. Same principals as on the listed instances.

targetScope = 'subscription'

@description('Who gets the role: objects {principalId, principalType}; the Function App\'s identity first.')
param principals array

@description('GUID of the APIM DR Operator custom role.')
param roleDefinitionId string

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principal in principals: {
  name: guid(subscription().id, principal.principalId, roleDefinitionId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principal.principalId
    principalType: principal.principalType
  }
}]
