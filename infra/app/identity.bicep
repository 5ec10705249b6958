// The Function App's user-assigned identity: runtime storage, deployment package, Application
// Insights, ARM calls to the APIM instances and the backup account all use it. A user-assigned
// identity (rather than the site's system-assigned one) exists before the site, so its role
// assignments can be made in the same deployment and survive a re-created site.

@description('Name of the user-assigned identity.')
param name string

@description('Region of the identity.')
param location string

@description('Tags of the identity.')
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
