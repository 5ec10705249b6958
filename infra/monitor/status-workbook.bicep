// Azure Monitor workbook "APIM DR status": the Function App's status page (GET /api/dashboard)
// rebuilt from the app's log lines in Application Insights, for when the app itself is down.
// The definition is status-workbook.json (Workbooks' own format, editable in the portal and
// exported back); its queries read only the `APIMDR_*` trace lines the app writes
// (tests/infra/test_status_workbook.py checks the prefixes and the fields against the code).

@description('Resource ID of the Application Insights component the app logs to (the workbook queries its traces).')
param appInsightsId string

@description('Region of the workbook.')
param location string

@description('Tags of the workbook.')
param tags object

@description('Name of the workbook as the portal lists it (unique in its resource group).')
param displayName string = 'APIM DR status'

var definition = loadJsonContent('status-workbook.json')

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID; a deterministic one keeps redeployments in place.
  name: guid(resourceGroup().id, appInsightsId, 'apim-dr-status-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    // Lower case: the portal lists a resource's workbooks by this ID, compared as text.
    sourceId: toLower(appInsightsId)
    serializedData: string(union(definition, {
      fallbackResourceIds: [
        appInsightsId
      ]
    }))
    version: '1.0'
  }
}

output workbookId string = workbook.id
output workbookName string = workbook.name
