"""send-email through SES, from templates; a retried job does not send twice."""

from __future__ import annotations

from string import Template
from typing import Any

from jobqueue import Job, JobError
from pods import config
from pods.context import Resources
from pods.payloads import optional, require
from pods.schema import QUERIES

TEMPLATES: dict[str, tuple[str, str]] = {
    "pod-ready": ("Your pod $podId is ready", "Hello,\n\nyour pod $podId is running at $url.\n"),
    "pod-failed": ("Your pod $podId could not start", "Hello,\n\nyour pod $podId failed: $error\n"),
    "snapshot-ready": ("Snapshot of $podId saved", "Hello,\n\nthe snapshot $snapshotId of $podId is saved.\n"),
    "usage-report": ("Your usage", "Hello,\n\nyou used $hours pod hours this period.\n"),
}


def render(template: str, params: dict[str, Any]) -> tuple[str, str]:
    if template not in TEMPLATES:
        raise JobError(
            f"unknown email template {template!r}; known: {', '.join(sorted(TEMPLATES))}", should_retry=False
        )
    subject, body = TEMPLATES[template]
    try:
        return Template(subject).substitute(params), Template(body).substitute(params)
    except KeyError as exc:
        raise JobError(f"email template {template!r} needs parameter {exc.args[0]!r}", should_retry=False) from None


def ses() -> Any:
    import boto3

    return boto3.client("ses")


def send_email(resources: Resources, job: Job) -> dict[str, Any]:
    to = require(job.data, "to")
    template = require(job.data, "template")
    params = optional(job.data, "params", dict) or {}
    subject, body = render(template, params)
    sender = config.email_from()
    with resources.connection() as conn, conn.transaction():
        # The row is written first and kept only if the send succeeds: a retry
        # finds it and stops; a failed send rolls it back and the retry sends.
        claimed = conn.execute(
            QUERIES["claim_email"], {"job_id": job.id, "recipient": to, "template": template}
        ).fetchone()
        if claimed is None:
            return {"already_sent": True}
        response = ses().send_email(
            Source=sender,
            Destination={"ToAddresses": [to]},
            Message={"Subject": {"Data": subject}, "Body": {"Text": {"Data": body}}},
        )
        message_id = response["MessageId"]
        conn.execute(QUERIES["record_email"], {"message_id": message_id, "job_id": job.id})
    return {"messageId": message_id}
