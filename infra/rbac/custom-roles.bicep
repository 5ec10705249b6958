// The five custom roles of apim-dr, defined at this deployment's subscription (role definitions are
// tenant-wide objects; `azd down` does not remove them: see docs/deploy.md). APIM DR Operator is
// assignable in other subscriptions too (the instances may live anywhere in the tenant); the deploying
// account needs Microsoft.Authorization/roleDefinitions/write here and at every assignable scope.
//
// APIM DR Operator: exactly the actions the Function App needs on an APIM instance: read it
//   (tier, state, identity), poll a running backup or restore (GET of its Location,
//   .../service/{name}/operationresults/{id}: a type of its own, not covered by service/read), start
//   a backup, start a restore, and read its configuration: every child resource a configuration
//   snapshot holds (APIs with their operations, schemas, tags, diagnostics, revisions and policies;
//   products with their APIs, groups, tags and policies; named values (never their secret values:
//   namedValues/listValue/action is not granted), backends, loggers, diagnostics, policy fragments,
//   tags, groups, certificates, version sets, schemas, the service policy). Each is a type of its
//   own, so each is named; reads only, no write or delete. The built-in API Management Service Operator Role would also allow
//   write, delete, hostname and certificate changes; Contributor allows everything.
// APIM DR Backup Data: read the backups and write their metadata, on the backup account. No delete
//   (Storage Blob Data Contributor would add blobs/delete, move, and container create/delete).
// APIM DR Backup Catalog: read, write and query blob index tags (no built-in data role short of
//   Storage Blob Data Owner has blobs/tags/*), and read the blob service's properties, which the
//   restore preflight's CORS check calls (Get Blob Service Properties needs blobServices/read, which no
//   Storage Blob Data role has). Given to the Function App and to the operators.
// APIM DR Backup Retention: delete backup blobs, nothing else. The daily prune (dr_core/retention/pruner.py)
//   is the only code that deletes a backup; the one destructive permission has a role of its own so
//   it is granted, reviewed and revoked on its own. Given to the Function App only.

targetScope = 'subscription'

@description('Name of the azd environment (part of the role names, which must be unique in the tenant).')
param environmentName string

@description('Token that makes the role names and GUIDs unique per subscription, environment and region.')
param resourceToken string

@description('Scopes where APIM DR Operator can be assigned: first the deployment\'s own resource group (where the definition is at home; nothing is granted there), then the resource groups of the protected, standby and drill instances and the discovery subscriptions, in any subscription of the tenant. Empty: the role is not created.')
param operatorAssignableScopes array

@description('Resource ID of the resource group that holds the backup account (the only scope of the three backup-account roles).')
param backupResourceGroupId string

var createOperatorRole = !empty(operatorAssignableScopes)

resource operatorRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if(createOperatorRole) {
  name: guid(subscription().id, 'apim-dr-operator', resourceToken)
  properties: {
    roleName: 'APIM DR Operator (${environmentName}-${resourceToken})'
    description: 'apim-dr: read API Management instances and their configuration (never secret values), start their backups and restores and follow those to their end. Nothing else.'
    type: 'customRole'
    permissions: [
      {
        actions: [
          'Microsoft.ApiManagement/service/read'
          'Microsoft.ApiManagement/service/operationresults/read'
          'Microsoft.ApiManagement/service/backup/action'
          'Microsoft.ApiManagement/service/restore/action'
          'Microsoft.ApiManagement/service/apis/read'
          'Microsoft.ApiManagement/service/products/read'
          'Microsoft.ApiManagement/service/namedValues/read'
          'Microsoft.ApiManagement/service/certificates/read'
          'Microsoft.ApiManagement/service/backends/read'
          'Microsoft.ApiManagement/service/loggers/read'
          'Microsoft.ApiManagement/service/tags/read'
          'Microsoft.ApiManagement/service/groups/read'
          'Microsoft.ApiManagement/service/apiVersionSets/read'
          'Microsoft.ApiManagement/service/schemas/read'
          'Microsoft.ApiManagement/service/policyFragments/read'
          'Microsoft.ApiManagement/service/diagnostics/read'
          'Microsoft.ApiManagement/service/policies/read'
          'Microsoft.ApiManagement/service/apis/operations/read'
          'Microsoft.ApiManagement/service/apis/schemas/read'
          'Microsoft.ApiManagement/service/apis/tags/read'
          'Microsoft.ApiManagement/service/apis/operations/tags/read'
          'Microsoft.ApiManagement/service/apis/diagnostics/read'
          'Microsoft.ApiManagement/service/apis/revisions/read'
          'Microsoft.ApiManagement/service/apis/policies/read'
          'Microsoft.ApiManagement/service/apis/operations/policies/read'
          'Microsoft.ApiManagement/service/products/apis/read'
          'Microsoft.ApiManagement/service/products/groups/read'
          'Microsoft.ApiManagement/service/products/tags/read'
          'Microsoft.ApiManagement/service/products/policies/read'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: operatorAssignableScopes
  }
}

// APIM DR Configuration Restore: write and delete the configuration items a snapshot restore puts back
// (never the service itself, never backup or restore, never namedValues/listValue). The Function App
// gets it on the instances infra knows; operators may be given it alone (configRestorePrincipalIds) to
// restore items without any backup or restore right.
resource configRestoreRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if(createOperatorRole) {
  name: guid(subscription().id, 'apim-dr-config-restore', resourceToken)
  properties: {
    roleName: 'APIM DR Configuration Restore (${environmentName}-${resourceToken})'
    description: 'apim-dr: write and delete API Management configuration items (APIs, operations, policies, products, named values ...) when restoring a configuration snapshot. Nothing else.'
    type: 'customRole'
    permissions: [
      {
        actions: [
          'Microsoft.ApiManagement/service/apiVersionSets/delete'
          'Microsoft.ApiManagement/service/apiVersionSets/write'
          'Microsoft.ApiManagement/service/apis/delete'
          'Microsoft.ApiManagement/service/apis/diagnostics/delete'
          'Microsoft.ApiManagement/service/apis/diagnostics/write'
          'Microsoft.ApiManagement/service/apis/operations/delete'
          'Microsoft.ApiManagement/service/apis/operations/policies/delete'
          'Microsoft.ApiManagement/service/apis/operations/policies/write'
          'Microsoft.ApiManagement/service/apis/operations/tags/delete'
          'Microsoft.ApiManagement/service/apis/operations/tags/write'
          'Microsoft.ApiManagement/service/apis/operations/write'
          'Microsoft.ApiManagement/service/apis/policies/delete'
          'Microsoft.ApiManagement/service/apis/policies/write'
          'Microsoft.ApiManagement/service/apis/schemas/delete'
          'Microsoft.ApiManagement/service/apis/schemas/write'
          'Microsoft.ApiManagement/service/apis/tags/delete'
          'Microsoft.ApiManagement/service/apis/tags/write'
          'Microsoft.ApiManagement/service/apis/write'
          'Microsoft.ApiManagement/service/backends/delete'
          'Microsoft.ApiManagement/service/backends/write'
          'Microsoft.ApiManagement/service/certificates/delete'
          'Microsoft.ApiManagement/service/certificates/write'
          'Microsoft.ApiManagement/service/diagnostics/delete'
          'Microsoft.ApiManagement/service/diagnostics/write'
          'Microsoft.ApiManagement/service/groups/delete'
          'Microsoft.ApiManagement/service/groups/write'
          'Microsoft.ApiManagement/service/loggers/delete'
          'Microsoft.ApiManagement/service/loggers/write'
          'Microsoft.ApiManagement/service/namedValues/delete'
          'Microsoft.ApiManagement/service/namedValues/write'
          'Microsoft.ApiManagement/service/policies/delete'
          'Microsoft.ApiManagement/service/policies/write'
          'Microsoft.ApiManagement/service/policyFragments/delete'
          'Microsoft.ApiManagement/service/policyFragments/write'
          'Microsoft.ApiManagement/service/products/apis/delete'
          'Microsoft.ApiManagement/service/products/apis/write'
          'Microsoft.ApiManagement/service/products/delete'
          'Microsoft.ApiManagement/service/products/groups/delete'
          'Microsoft.ApiManagement/service/products/groups/write'
          'Microsoft.ApiManagement/service/products/policies/delete'
          'Microsoft.ApiManagement/service/products/policies/write'
          'Microsoft.ApiManagement/service/products/tags/delete'
          'Microsoft.ApiManagement/service/products/tags/write'
          'Microsoft.ApiManagement/service/products/write'
          'Microsoft.ApiManagement/service/schemas/delete'
          'Microsoft.ApiManagement/service/schemas/write'
          'Microsoft.ApiManagement/service/tags/delete'
          'Microsoft.ApiManagement/service/tags/write'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: operatorAssignableScopes
  }
}

resource backupDataRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'apim-dr-backup-data', resourceToken)
  properties: {
    roleName: 'APIM DR Backup Data (${environmentName}-${resourceToken})'
    description: 'apim-dr: read backup blobs and write their metadata. No delete.'
    type: 'customRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: [
      backupResourceGroupId
    ]
  }
}

// Same GUID seed as the role's first version ("APIM DR Backup Index Tags"), so a deployment updates it
// in place and its existing assignments keep working.
resource backupCatalogRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'apim-dr-backup-index-tags', resourceToken)
  properties: {
    roleName: 'APIM DR Backup Catalog (${environmentName}-${resourceToken})'
    description: 'apim-dr: read, write and find blob index tags of the backups; read the blob service properties (CORS check). No blob data access.'
    type: 'customRole'
    permissions: [
      {
        actions: [
          'Microsoft.Storage/storageAccounts/blobServices/read'
        ]
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

resource backupRetentionRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, 'apim-dr-backup-retention', resourceToken)
  properties: {
    roleName: 'APIM DR Backup Retention (${environmentName}-${resourceToken})'
    description: 'apim-dr: delete backup blobs past their retention (the daily prune). Nothing else.'
    type: 'customRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'
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

@description('GUID of APIM DR Configuration Restore; empty when no scope needs it.')
output configRestoreRoleId string = createOperatorRole ? configRestoreRole.name : ''

@description('GUID of APIM DR Backup Data.')
output backupDataRoleId string = backupDataRole.name

@description('GUID of APIM DR Backup Catalog.')
output backupCatalogRoleId string = backupCatalogRole.name

@description('GUID of APIM DR Backup Retention.')
output backupRetentionRoleId string = backupRetentionRole.name
