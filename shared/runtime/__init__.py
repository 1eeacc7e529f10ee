"""The serverless runtime: what the Lambda functions in functions/ run.

Depends on the queue core (jobqueue), on AWS libraries (boto3, Powertools)
and on the platform's handlers (pods); the queue core depends on none of it.
"""
