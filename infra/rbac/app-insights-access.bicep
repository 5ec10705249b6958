// Monitoring Metrics Publisher on the Application Insights component: with local auth off, the
// Functions host sends telemetry with the app's identity.

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Object ID of the principal.')
param principalId string

@description('Role definition GUID (Monitoring Metrics Publisher, from infra/roles.json).')
param roleDefinitionId string

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, roleDefinitionId)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
