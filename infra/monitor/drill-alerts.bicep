// Alert rule on the restore drills' log. Each time a drill starts or ends, the app logs one trace
// whose message is `APIMDR_DRILL ` followed by a JSON object: instance, target, jobId, backup,
// backupCreatedAt, requestedAt, finishedAt, state (running|passed|failed, or not-started when no
// drill could start), rtoSeconds, rpoHoursAtDrill, error {code, message, remediation}, and the
// counts of missing and unexpected names.
// The app announces a failed drill to its own webhook once; this rule is the safety net when that
// announcement does not arrive (webhook down, no webhook configured).

@description('Resource ID of the Application Insights component the app logs to (the rule queries its traces).')
param appInsightsId string

@description('Resource ID of the action group to notify (from job-alerts.bicep). Empty: the rule fires without one.')
param actionGroupId string = ''

@description('Prefix of the alert rule names.')
param alertNamePrefix string

@description('Region of the alert rule.')
param location string

@description('Tags of the alert rule.')
param tags object

// Every drill transition, parsed. "APIMDR_DRILL " is 13 characters long.
var drillLogQuery = 'traces | where message startswith "APIMDR_DRILL " | extend drill = parse_json(substring(message, 13))'
var drillColumns = 'project timestamp, jobId = tostring(drill.jobId), instance = tostring(drill.instance), target = tostring(drill.target), state = tostring(drill.state), errorCode = tostring(drill.error.code), missing = toint(drill.missing), unexpected = toint(drill.unexpected), rtoSeconds = todouble(drill.rtoSeconds)'

resource drillFailed 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${alertNamePrefix}-drill-failed'
  location: location
  tags: tags
  properties: {
    displayName: 'APIM DR: restore drill failed'
    description: 'A restore drill into a drill instance failed: its restore was refused or failed, or the restored configuration differs from the backup\'s manifest (missing or unexpected APIs, products or named values). Run `apim-dr drills --service <instance>` for what differed; see the runbook, section "Restore drills".'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    // A drill logs its end once; tiled 5-minute windows see each line exactly once, like the job rules.
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: '${drillLogQuery} | where tostring(drill.state) == "failed" | ${drillColumns}'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'instance'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: empty(actionGroupId) ? [] : [
        actionGroupId
      ]
    }
  }
}

output alertRuleName string = drillFailed.name
