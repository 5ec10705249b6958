// Alert rule on the RPO monitor's log. Each time an instance's RPO state changes, the app logs one
// trace whose message is `APIMDR_RPO ` followed by a JSON object: instance, serviceName, state
// (ok|at-risk|breached|unknown), previous, targetHours, ageHours, newestRestorable, reason.
// The app announces a breach to its own webhook once; this rule is the safety net when that
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

// Every RPO state change, parsed. "APIMDR_RPO " is 11 characters long.
var rpoLogQuery = 'traces | where message startswith "APIMDR_RPO " | extend rpo = parse_json(substring(message, 11))'
var rpoColumns = 'project timestamp, instance = tostring(rpo.instance), serviceName = tostring(rpo.serviceName), state = tostring(rpo.state), previous = tostring(rpo.previous), ageHours = todouble(rpo.ageHours), targetHours = todouble(rpo.targetHours), reason = tostring(rpo.reason)'

resource rpoBreached 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = {
  name: '${alertNamePrefix}-rpo-breached'
  location: location
  tags: tags
  properties: {
    displayName: 'APIM DR: RPO breached'
    description: 'The newest restorable backup of an APIM instance is older than its RPO target (rpoHours, default APIM_DR_RPO_HOURS = 26 h), or it has none. Run `apim-dr status` for the reason and the open failures; see the runbook, section "RPO breached".'
    severity: 1
    enabled: true
    scopes: [
      appInsightsId
    ]
    // The monitor logs a breach once, when it happens (every 15 minutes at most); tiled 5-minute
    // windows see each line exactly once, like the job rules.
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: '${rpoLogQuery} | where tostring(rpo.state) == "breached" | ${rpoColumns}'
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

output alertRuleName string = rpoBreached.name
