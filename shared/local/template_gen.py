"""Writes template.yaml from the platform's declarations (runtime.platform).

One worker resource per job type is repetitive to write by hand and easy to
get out of step with the code; this generator keeps them in step, and a test
fails when the committed template.yaml differs from what it would write.
Run `make template` after changing the platform's queues.
"""

from __future__ import annotations

import sys
from pathlib import Path

from runtime.platform import QUEUES

ROOT = Path(__file__).parents[2]
TEMPLATE = ROOT / "template.yaml"

# What each job type's handler touches beyond the database (least privilege).
SNAPSHOT_QUEUES = {"create-snapshot", "restore-snapshot", "cleanup-old"}
EMAIL_QUEUES = {"send-email"}
HOST_AGENT_QUEUES = {
    "provision-pod",
    "start-pod",
    "stop-pod",
    "restart-pod",
    "cleanup-pod",
    "create-snapshot",
    "restore-snapshot",
    "health-check",
    "cleanup-old",
}
# Queues whose handlers send jobs to other queues, and may kick their workers.
SENDS_TO = {"health-check": ["restart-pod"], "health-check-all": ["health-check"]}
TEAM_SIZES = {"health-check": 5}
EXTRA_ENV = {
    "cleanup-old": {"GITHUB_TOKEN_SECRET_ARN": "!Ref GitHubTokenSecretArn"},
    "send-email": {"EMAIL_FROM": "!Sub noreply@${EmailDomain}"},
}


def logical_id(queue: str) -> str:
    return "".join(part.capitalize() for part in queue.split("-")) + "Worker"


def function_name(queue: str) -> str:
    return "${AWS::StackName}-" + queue


def function_arn(queue: str) -> str:
    return "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:" + function_name(queue)


def worker(queue: str) -> str:
    policies = [
        "        - AWSSecretsManagerGetSecretValuePolicy:\n            SecretArn: !Ref DbSecretArn",
        # Scale-out: a worker may start more of itself, and kick the workers it sends to.
        "        - Statement:\n"
        "            - Effect: Allow\n"
        "              Action: lambda:InvokeFunction\n"
        "              Resource:\n"
        + "".join(f"                - !Sub {function_arn(q)}\n" for q in [queue, *SENDS_TO.get(queue, [])]).rstrip(
            "\n"
        ),
    ]
    if queue in HOST_AGENT_QUEUES:
        policies.append(
            "        - AWSSecretsManagerGetSecretValuePolicy:\n            SecretArn: !Ref HostApiKeySecretArn"
        )
    if queue in SNAPSHOT_QUEUES:
        actions = {
            "create-snapshot": ["s3:PutObject"],
            "restore-snapshot": ["s3:GetObject"],
            "cleanup-old": ["s3:DeleteObject"],
        }[queue]
        policies.append(
            "        - Statement:\n"
            "            - Effect: Allow\n"
            f"              Action: [{', '.join(actions)}]\n"
            "              Resource: !Sub arn:${AWS::Partition}:s3:::${SnapshotBucketName}/snapshots/*"
        )
    if queue == "cleanup-old":
        policies.append(
            "        - AWSSecretsManagerGetSecretValuePolicy:\n            SecretArn: !Ref GitHubTokenSecretArn"
        )
    if queue in EMAIL_QUEUES:
        policies.append(
            "        - Statement:\n"
            "            - Effect: Allow\n"
            "              Action: [ses:SendEmail, ses:SendRawEmail]\n"
            "              Resource: !Sub "
            "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${EmailDomain}"
        )
    team = TEAM_SIZES.get(queue)
    team_size = str(team) if team else "!Ref WorkerTeamSize"
    extra_env = "".join(f"\n          {key}: {value}" for key, value in EXTRA_ENV.get(queue, {}).items())
    return f"""  {logical_id(queue)}:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub {function_name(queue)}
      Description: Drains the {queue} queue
      CodeUri: functions/worker/
      Handler: app.handler
      Timeout: !Ref WorkerTimeout
      ReservedConcurrentExecutions: !Ref WorkerReservedConcurrency
      Environment:
        Variables:
          QUEUE_NAME: {queue}
          BATCH_SIZE: !Ref WorkerBatchSize
          TEAM_SIZE: {team_size}
          MAX_JOBS: !Ref WorkerMaxJobs
          MAX_CONCURRENCY: !Ref WorkerReservedConcurrency{extra_env}
      Policies:
{chr(10).join(policies)}
      Events:
        Tick:
          Type: Schedule
          Properties:
            Schedule: rate(1 minute)
            Description: Drain {queue} every minute
"""


def worker_functions_json() -> str:
    pairs = ", ".join(f'"{spec.name}": "{function_name(spec.name)}"' for spec in QUEUES)
    return "{" + pairs + "}"


def worker_alarm(queue: str) -> str:
    return f"""  {logical_id(queue)}ErrorsAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: The {queue} worker is failing (its claimed jobs expire and are retried)
      Namespace: AWS/Lambda
      MetricName: Errors
      Dimensions:
        - Name: FunctionName
          Value: !Ref {logical_id(queue)}
      Statistic: Sum
      Period: 300
      EvaluationPeriods: 1
      Threshold: 3
      ComparisonOperator: GreaterThanOrEqualToThreshold
      TreatMissingData: notBreaching
      AlarmActions: [!Ref AlarmTopicArn]

"""


def render() -> str:
    workers = "".join(worker(spec.name) + "\n" for spec in QUEUES)
    all_worker_arns = "".join(f"                - !Sub {function_arn(spec.name)}\n" for spec in QUEUES).rstrip("\n")
    alarms = "".join(worker_alarm(spec.name) for spec in QUEUES)
    return (
        HEADER
        + workers
        + FOOTER.replace("@WORKER_ALARMS@", alarms)
        .replace("@WORKER_ARNS@", all_worker_arns)
        .replace("@WORKER_FUNCTIONS@", worker_functions_json().replace('"', '\\"'))
    )


HEADER = """\
# Generated by `make template` (shared/local/template_gen.py) from runtime/platform.py.
# Edit the generator, not this file: a test fails when they disagree.
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Description: Background jobs of the pods platform on a Postgres job queue (workers, scheduler, maintenance, API)

Parameters:
  Stage:
    Type: String
    AllowedValues: [dev, prod]
    Default: dev
  DbSecretArn:
    Type: String
    Description: Secrets Manager secret with the database URL, or RDS's JSON (username, password, host, port, dbname)
  HostApiKeySecretArn:
    Type: String
    Description: Secrets Manager secret with the host agents' X-Api-Key
  GitHubTokenSecretArn:
    Type: String
    Description: Secrets Manager secret with the GitHub token used to remove pods' deploy keys
  DashboardTokenSecretArn:
    Type: String
    Description: Secrets Manager secret with the token people sign in to the dashboard with
  SubnetIds:
    Type: List<AWS::EC2::Subnet::Id>
    Description: Private subnets that reach the database (and Secrets Manager, through an endpoint or NAT)
  SecurityGroupIds:
    Type: List<AWS::EC2::SecurityGroup::Id>
    Description: Security groups allowed to connect to the database
  SnapshotBucketName:
    Type: String
    Description: S3 bucket for pod snapshots (objects under snapshots/)
  EmailDomain:
    Type: String
    Description: SES identity (domain) the platform's email is sent from
  AlarmTopicArn:
    Type: String
    Description: SNS topic that receives the alarms
  WorkerTimeout:
    Type: Number
    Default: 300
    MinValue: 30
    MaxValue: 900
    Description: Seconds one worker invocation may run
  WorkerBatchSize:
    Type: Number
    Default: 10
    MinValue: 1
    MaxValue: 1000
  WorkerTeamSize:
    Type: Number
    Default: 5
    MinValue: 1
    MaxValue: 100
    Description: Handlers a worker runs at once
  WorkerMaxJobs:
    Type: Number
    Default: 1000
    MinValue: 1
    Description: Jobs one worker invocation takes at most
  WorkerReservedConcurrency:
    Type: Number
    Default: 2
    MinValue: 1
    Description: Invocations of each worker at once (protects the database's connections)
  FailedJobsThreshold:
    Type: Number
    Default: 100
  OldestQueuedJobAgeThreshold:
    Type: Number
    Default: 900
    Description: Seconds the oldest ready job may wait before the alarm fires

Globals:
  Function:
    Runtime: python3.12
    Architectures: [arm64]
    MemorySize: 512
    Timeout: 60
    Tracing: Active
    Layers:
      - !Ref DependenciesLayer
      - !Ref AppLayer
    VpcConfig:
      SubnetIds: !Ref SubnetIds
      SecurityGroupIds: !Ref SecurityGroupIds
    Environment:
      Variables:
        DB_SECRET_ARN: !Ref DbSecretArn
        HOST_API_KEY_SECRET_ARN: !Ref HostApiKeySecretArn
        SNAPSHOT_BUCKET: !Ref SnapshotBucketName
        STAGE: !Ref Stage
        POWERTOOLS_SERVICE_NAME: jobs
        POWERTOOLS_METRICS_NAMESPACE: Jobs
        POWERTOOLS_TRACE_DISABLED: "false"
        POWERTOOLS_LOG_LEVEL: INFO
        STATEMENT_TIMEOUT_MS: "30000"

Resources:
  DependenciesLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      Description: Third-party packages (psycopg, croniter, Powertools)
      ContentUri: layers/dependencies/
      CompatibleRuntimes: [python3.12]
      CompatibleArchitectures: [arm64]
    Metadata:
      BuildMethod: python3.12
      BuildArchitecture: arm64

  AppLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      Description: The project's own packages (jobqueue, runtime, pods), packaged once for every function
      ContentUri: layers/app/
      CompatibleRuntimes: [python3.12]
      CompatibleArchitectures: [arm64]
    Metadata:
      BuildMethod: makefile
      BuildArchitecture: arm64

"""

FOOTER = """\
  Scheduler:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub ${AWS::StackName}-scheduler
      Description: Turns due cron fire times into jobs, exactly once each
      CodeUri: functions/scheduler/
      Handler: app.handler
      Timeout: 60
      ReservedConcurrentExecutions: 1
      Policies:
        - AWSSecretsManagerGetSecretValuePolicy:
            SecretArn: !Ref DbSecretArn
      Events:
        Tick:
          Type: Schedule
          Properties:
            Schedule: rate(1 minute)

  Maintenance:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub ${AWS::StackName}-maintenance
      Description: Expires, archives and purges jobs; records queue stats; scales out on backlog
      CodeUri: functions/maintenance/
      Handler: app.handler
      Timeout: 300
      ReservedConcurrentExecutions: 1
      Environment:
        Variables:
          WORKER_FUNCTIONS: !Sub "@WORKER_FUNCTIONS@"
          SCALE_JOBS_PER_WORKER: !Ref WorkerMaxJobs
          SCALE_MAX_WORKERS: !Ref WorkerReservedConcurrency
      Policies:
        - AWSSecretsManagerGetSecretValuePolicy:
            SecretArn: !Ref DbSecretArn
        - Statement:
            - Effect: Allow
              Action: lambda:InvokeFunction
              Resource:
@WORKER_ARNS@
      Events:
        Tick:
          Type: Schedule
          Properties:
            Schedule: rate(5 minutes)

  Api:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub ${AWS::StackName}-api
      Description: /api/jobs health, stats and operations; the /dashboard pages
      CodeUri: functions/api/
      Handler: app.handler
      Timeout: 29
      Environment:
        Variables:
          WORKER_FUNCTIONS: !Sub "@WORKER_FUNCTIONS@"
          API_TOKEN_SECRET_ARN: !Ref DashboardTokenSecretArn
      Policies:
        - AWSSecretsManagerGetSecretValuePolicy:
            SecretArn: !Ref DbSecretArn
        - AWSSecretsManagerGetSecretValuePolicy:
            SecretArn: !Ref DashboardTokenSecretArn
        - Statement:
            - Effect: Allow
              Action: lambda:InvokeFunction
              Resource:
@WORKER_ARNS@
      Events:
        Jobs:
          Type: HttpApi
          Properties:
            ApiId: !Ref HttpApi
            Path: /api/jobs
            Method: ANY
        JobsProxy:
          Type: HttpApi
          Properties:
            ApiId: !Ref HttpApi
            Path: /api/jobs/{proxy+}
            Method: ANY
        # Browsers cannot sign requests with IAM: the dashboard's routes skip the
        # IAM authorizer and the function signs people in with the dashboard token.
        Dashboard:
          Type: HttpApi
          Properties:
            ApiId: !Ref HttpApi
            Path: /dashboard
            Method: ANY
            Auth:
              Authorizer: NONE
        DashboardProxy:
          Type: HttpApi
          Properties:
            ApiId: !Ref HttpApi
            Path: /dashboard/{proxy+}
            Method: ANY
            Auth:
              Authorizer: NONE

  HttpApi:
    Type: AWS::Serverless::HttpApi
    Properties:
      StageName: !Ref Stage
      Auth:
        DefaultAuthorizer: AWS_IAM
        EnableIamAuthorizer: true

  FailedJobsAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: Too many failed jobs (not yet archived)
      Namespace: Jobs
      MetricName: FailedJobsTotal
      Dimensions:
        - Name: service
          Value: jobs
      Statistic: Maximum
      Period: 300
      EvaluationPeriods: 1
      Threshold: !Ref FailedJobsThreshold
      ComparisonOperator: GreaterThanOrEqualToThreshold
      TreatMissingData: notBreaching
      AlarmActions: [!Ref AlarmTopicArn]

  OldestQueuedJobAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: A ready job has waited too long (workers down or overwhelmed)
      Namespace: Jobs
      MetricName: OldestQueuedJobAgeMax
      Dimensions:
        - Name: service
          Value: jobs
      Statistic: Maximum
      Period: 300
      EvaluationPeriods: 2
      Threshold: !Ref OldestQueuedJobAgeThreshold
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: breaching
      AlarmActions: [!Ref AlarmTopicArn]

  SchedulerErrorsAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: The scheduler function is failing
      Namespace: AWS/Lambda
      MetricName: Errors
      Dimensions:
        - Name: FunctionName
          Value: !Ref Scheduler
      Statistic: Sum
      Period: 300
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanOrEqualToThreshold
      TreatMissingData: notBreaching
      AlarmActions: [!Ref AlarmTopicArn]

  MaintenanceErrorsAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: The maintenance function is failing
      Namespace: AWS/Lambda
      MetricName: Errors
      Dimensions:
        - Name: FunctionName
          Value: !Ref Maintenance
      Statistic: Sum
      Period: 900
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanOrEqualToThreshold
      TreatMissingData: notBreaching
      AlarmActions: [!Ref AlarmTopicArn]

@WORKER_ALARMS@Outputs:
  ApiUrl:
    Description: Base URL of the jobs API (IAM-signed requests)
    Value: !Sub https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}/api/jobs
  DashboardUrl:
    Description: The jobs dashboard (sign in with the token in DashboardTokenSecretArn)
    Value: !Sub https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${Stage}/dashboard
"""


def main() -> int:
    TEMPLATE.write_text(render())
    print(f"wrote {TEMPLATE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
