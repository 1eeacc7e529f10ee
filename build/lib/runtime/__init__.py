"""The serverless runtime: what the Lambda functions in functions/ run.

Depends on the queue core (jobqueue) and on AWS libraries (boto3, Powertools).
It knows no platform of its own: the platform (pods, above it) declares its job
types in a Catalog (runtime.jobtypes), which runtime.catalog loads by
configuration (JOBS_PLATFORM).
"""
