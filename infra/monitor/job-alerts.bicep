// Alert rules on the app's own job log. For each job transition the app logs one trace whose
// message is `APIMDR_JOB ` followed by a JSON object: jobId, kind (backup|restore), instance,
// state (Planned|Starting|Running|Succeeded|Failed|TimedOut|Refused), durationSeconds, errorCode.
// These rules are the safety net when the app's own webhook announcement does not arrive.

@description('Resource ID of the Application Insights component the app logs to (the rules query its traces).')
param appInsightsId string

@description('Name of the action group (created only when a webhook or e-mail receiver is given).')
param actionGroupName string

@description('Prefix of the alert rule names.')
param alertNamePrefix string

@description('Region of the alert rules.')
param location string

@description('Tags of the alert rules and the action group.')
param tags object

@secure()
@description('Webhook receiver of the action group (Azure Monitor common alert schema). Empty: none.')
param webhookUrl string = ''

@description('E-mail receiver of the action group. Empty: none.')
param emailAddress string = ''

var hasReceivers = !empty(webhookUrl) || !empty(emailAddress)

// Every job transition, parsed. "APIMDR_JOB " is 11 characters long.
var jobLogQuery = 'traces | where message startswith "APIMDR_JOB " | extend job = parse_json(substring(message, 11))'
var jobColumns = 'project timestamp, jobId = tostring(job.jobId), kind = tostring(job.kind), instance = tostring(job.instance), state = tostring(job.state), errorCode = tostring(job.errorCode), durationSeconds = todouble(job.durationSeconds)'

var jobAlertRules = [
  {
    key: 'failed'
    state: 'Failed'
    severity: 1
    description: 'An APIM backup or restore job failed. The job row and the trace carry the ARM error code and a remediation hint; see the runbook.'
  }
  {
    key: 'timed-out'
    state: 'TimedOut'
    severity: 2
    description: 'An APIM backup or restore job was still running past its deadline (APIM_DR_BACKUP_TIMEOUT_MINUTES / APIM_DR_RESTORE_TIMEOUT_MINUTES) and was marked TimedOut. Check the instance in the portal before starting another job.'
  }
]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if(hasReceivers) {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'apimdr'
    enabled: true
    webhookReceivers: empty(webhookUrl) ? [] : [
      {
        name: 'webhook'
        serviceUri: webhookUrl
        useCommonAlertSchema: true
      }
    ]
    emailReceivers: empty(emailAddress) ? [] : [
      {
        name: 'email'
        emailAddress: emailAddress
        useCommonAlertSchema: true
      }
    ]
  }
}

resource jobAlerts 'Microsoft.Insights/scheduledQueryRules@2022-06-15' = [for rule in jobAlertRules: {
  name: '${alertNamePrefix}-job-${rule.key}'
  location: location
  tags: tags
  properties: {
    displayName: 'APIM DR: job ${rule.state}'
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: '${jobLogQuery} | where tostring(job.state) == "${rule.state}" | ${jobColumns}'
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
            {
              name: 'kind'
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
      actionGroups: hasReceivers ? [
        actionGroup.id
      ] : []
    }
  }
}]

output alertRuleNames array = [for (rule, i) in jobAlertRules: jobAlerts[i].name]
// The RPO alert rule (rpo-alerts.bicep) notifies the same receivers.
output actionGroupId string = hasReceivers ? actionGroup.id : ''
