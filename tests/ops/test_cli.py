"""The `jobs` command line against a real database: each command and its errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from jobqueue import Queue
from ops.cli import main


@pytest.fixture
def jobs(dsn: str) -> CliRunner:
    return CliRunner(env={"DATABASE_URL": dsn})


def run(runner: CliRunner, *args: str, input: str | None = None) -> Result:
    return runner.invoke(main, list(args), input=input, catch_exceptions=False)


def test_migrate_send_show_stats(jobs: CliRunner, dsn: str) -> None:
    assert "platform queues registered" in run(jobs, "migrate").output
    sent = run(jobs, "send", "send-email", "--data", '{"to": "a@b.c"}', "--priority", "3")
    assert sent.exit_code == 0
    job_id = sent.output.strip()
    shown = json.loads(run(jobs, "show", job_id).output)
    assert shown["data"] == {"to": "a@b.c"} and shown["priority"] == 3
    stats = json.loads(run(jobs, "stats", "--json").output)
    assert {s["queue"]: s["created"] for s in stats}["send-email"] == 1
    assert "send-email" in run(jobs, "stats").output


def test_insert_from_a_file_and_stdin(jobs: CliRunner, tmp_path: Path) -> None:
    run(jobs, "migrate")
    batch = tmp_path / "jobs.json"
    batch.write_text(json.dumps([{"data": {"n": n}} for n in range(5)]))
    assert "inserted 5 of 5 jobs" in run(jobs, "insert", "send-email", str(batch)).output
    lines = "\n".join(json.dumps({"data": n, "priority": n}) for n in range(3))
    assert "inserted 3 of 3" in run(jobs, "insert", "send-email", "-", input=lines).output


def test_send_and_insert_add_the_options_the_job_type_derives(jobs: CliRunner, dsn: str, tmp_path: Path) -> None:
    run(jobs, "migrate")
    sent = run(jobs, "send", "pod-lifecycle", "--data", '{"action": "stop", "podId": "p-1"}')
    assert sent.exit_code == 0, sent.output
    batch = tmp_path / "pods.json"
    batch.write_text(json.dumps([{"data": {"action": "provision", "podId": "p-2", "spec": {"tier": "t"}}}]))
    assert "inserted 1 of 1" in run(jobs, "insert", "pod-lifecycle", str(batch)).output
    with Queue(dsn) as q:
        stop = q.get_job(sent.output.strip())
        [provision] = q.find_jobs("pod-lifecycle", key="p-2")
    assert stop is not None and stop.singleton_key == "p-1"
    assert (provision.group_id, provision.group_tier) == ("unknown/t", "t")  # its user (none given) and tier
    refused = run(jobs, "send", "pod-lifecycle", "--data", '{"action": "stop"}')
    assert refused.exit_code == 1 and refused.output.strip() == "error: pod-lifecycle: payload is missing 'podId'"


def test_failed_retry_and_cancel(jobs: CliRunner, dsn: str) -> None:
    run(jobs, "migrate")
    with Queue(dsn) as q:
        failed_id = q.send("send-email", {"to": "x"}, retry_limit=0)
        q.fail("send-email", q.fetch("send-email"), "SES said no")
        waiting = q.send("send-email", {"to": "y"})
    listing = run(jobs, "failed", "send-email")
    assert failed_id is not None and failed_id[:8] in listing.output and "SES said no" in listing.output
    assert run(jobs, "retry", str(failed_id)).output.strip() == f"retry: {failed_id}"
    assert run(jobs, "cancel", str(waiting)).exit_code == 0
    again = run(jobs, "cancel", str(waiting))
    assert again.exit_code == 1 and "is cancelled: cannot cancel it" in again.output
    assert run(jobs, "resume", str(waiting)).output.strip() == f"resume: {waiting}"


def test_schedules_add_list_remove(jobs: CliRunner) -> None:
    run(jobs, "migrate")
    added = run(jobs, "schedules", "add", "send-email", "0 9 * * 1", "--tz", "Europe/Berlin", "--key", "weekly")
    assert added.exit_code == 0
    listing = run(jobs, "schedules", "list").output
    assert "0 9 * * 1" in listing and "Europe/Berlin" in listing
    assert run(jobs, "schedules", "remove", "send-email", "--key", "weekly").exit_code == 0
    assert "no schedule" in run(jobs, "schedules", "remove", "send-email", "--key", "weekly").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["send", "nope", "--data", "{}"], "unknown queue 'nope'"),
        (["send", "send-email", "--data", "{oops"], "--data is not valid JSON"),
        (["send", "send-email", "--priority", "99999999"], "priority must be between"),
        (["send", "send-email", "--start-after", "soon"], "not an ISO 8601"),
        (["send", "bad name!"], "invalid queue name"),
        (["show", "not-a-uuid"], "job id must be a UUID"),
        (["show", "01a221cc-a803-7b0d-b34b-9d342cafd700"], "no job"),
        (["retry", "01a221cc-a803-7b0d-b34b-9d342cafd700"], "no job"),
        (["schedules", "add", "send-email", "61 * * * *"], "invalid cron expression"),
        (["schedules", "add", "send-email", "0 * * * *", "--tz", "Mars/Base"], "unknown time zone"),
    ],
)
def test_user_mistakes_are_one_clear_line(jobs: CliRunner, args: list[str], message: str) -> None:
    run(jobs, "migrate")
    result = run(jobs, *args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.output.startswith("error: ")


def test_database_errors_are_one_clear_line() -> None:
    no_url = CliRunner(env={"DATABASE_URL": ""})
    assert "no database: set DATABASE_URL" in run(no_url, "stats").output
    bad = CliRunner(env={"DATABASE_URL": "postgresql://app:pw-secret@127.0.0.1:1/none"})
    result = run(bad, "stats")
    assert result.exit_code == 1 and "cannot connect to the database" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output  # libpq's hints left out
    assert "pw-secret" not in result.output
    malformed = run(CliRunner(env={"DATABASE_URL": "mysql://x"}), "stats")
    assert malformed.exit_code == 1 and "scheme must be postgresql" in malformed.output


def test_queue_shows_blocked_keys_and_active_groups(jobs: CliRunner, dsn: str) -> None:
    with Queue(dsn) as queue:
        queue.create_queue("fifo", policy="key_strict_fifo", retry_limit=0)
        queue.send("fifo", {}, singleton_key="pod-1", group={"id": "host-a", "tier": "large"})
        queue.send("fifo", {}, singleton_key="pod-2", group={"id": "host-a", "tier": "large"})
        first, _ = queue.fetch("fifo", 2)
        queue.fail("fifo", [first], "boom")
    shown = jobs.invoke(main, ["queue", "fifo"])
    assert shown.exit_code == 0, shown.output
    assert "policy key_strict_fifo" in shown.output
    assert f"blocked keys (1): {first.singleton_key}" in shown.output
    assert "host-a" in shown.output and "large" in shown.output  # one job of the group still active
    assert "finished jobs: archived 3600 s after they finish, deleted 604800 s later" in shown.output
    missing = jobs.invoke(main, ["queue", "nope"])
    assert missing.exit_code == 1 and "unknown queue 'nope' (queues: fifo)" in missing.output


def test_queue_says_when_its_finished_jobs_are_deleted_instead_of_archived(jobs: CliRunner, dsn: str) -> None:
    with Queue(dsn) as queue:
        queue.create_queue("fleeting", archive=False, archive_after=60)
        queue.create_queue("forever", delete_after=0)
    fleeting = jobs.invoke(main, ["queue", "fleeting"])
    assert "finished jobs: deleted 60 s after they finish, not archived" in fleeting.output
    assert "archived 3600 s after they finish, kept for good" in jobs.invoke(main, ["queue", "forever"]).output


def test_queue_says_when_its_jobs_have_a_partition_of_their_own(jobs: CliRunner, dsn: str) -> None:
    with Queue(dsn) as queue:
        queue.create_queue("bulk", partition=True)
        queue.create_queue("plain")
    assert "in a partition of the job table of their own" in jobs.invoke(main, ["queue", "bulk"]).output
    assert "partition" not in jobs.invoke(main, ["queue", "plain"]).output


def test_an_unknown_queue_is_the_same_error_on_every_command(jobs: CliRunner) -> None:
    run(jobs, "migrate")
    for command in (
        ["send", "send-emial"],
        ["failed", "send-emial"],
        ["queue", "send-emial"],
        ["schedules", "add", "send-emial", "0 * * * *"],
    ):
        result = run(jobs, *command)
        assert result.exit_code == 1, command
        assert result.output == "error: unknown queue 'send-emial' (did you mean 'send-email'?)\n", command


def test_schedules_add_refuses_to_replace_without_replace(jobs: CliRunner) -> None:
    run(jobs, "migrate")
    refused = run(jobs, "schedules", "add", "calculate-usage", "*/5 * * * *")
    assert refused.exit_code == 1
    assert "already has a schedule with key '' (0 * * * * UTC): pass --replace" in refused.output
    assert run(jobs, "schedules", "add", "calculate-usage", "*/5 * * * *", "--key", "often").exit_code == 0
    replaced = run(jobs, "schedules", "add", "calculate-usage", "*/10 * * * *", "--replace")
    assert replaced.output.startswith("replaced calculate-usage")
    listing = run(jobs, "schedules", "list").output
    crons = {line.split("│")[3].strip() for line in listing.splitlines() if "calculate-usage" in line}
    assert crons == {"*/10 * * * *", "*/5 * * * *"}
    assert " UTC" in listing  # times say their zone


def test_data_defaults_to_an_object_for_the_platforms_job_types(jobs: CliRunner, dsn: str) -> None:
    run(jobs, "migrate")
    job_id = run(jobs, "send", "calculate-usage").output.strip()
    run(jobs, "schedules", "add", "send-email", "0 9 * * *")
    with Queue(dsn) as q:
        job = q.get_job(job_id)
        [schedule] = q.get_schedules("send-email")
        q.create_queue("plain")
    assert job is not None and job.data == {}
    assert schedule.data == {}
    plain = run(jobs, "send", "plain").output.strip()
    with Queue(dsn) as q:
        assert q.get_job(plain).data is None  # type: ignore[union-attr]  # a queue of no job type: null


def test_a_send_the_policy_refuses_is_worded_as_on_the_api(jobs: CliRunner) -> None:
    from tests.runtime.test_api import REFUSED

    run(jobs, "migrate")
    assert run(jobs, "send", "cleanup-old").exit_code == 0
    refused = run(jobs, "send", "cleanup-old")
    assert refused.exit_code == 1 and refused.output == f"error: {REFUSED.format(queue='cleanup-old')}\n"


def test_pause_and_resume_a_queue(jobs: CliRunner, dsn: str) -> None:
    run(jobs, "migrate")
    assert run(jobs, "pause-queue", "send-email").output == "paused send-email\n"
    assert "send-email (paused)" in run(jobs, "stats").output
    assert json.loads(run(jobs, "stats", "--json").output)[-1]["paused"] in (True, False)
    assert run(jobs, "resume-queue", "send-email").output == "resumed send-email\n"
    assert "(paused)" not in run(jobs, "stats").output
    wrong = run(jobs, "pause-queue", "send-emial")
    assert wrong.exit_code == 1 and "did you mean 'send-email'" in wrong.output


def test_redrive_from_the_command_line(jobs: CliRunner, dsn: str) -> None:
    run(jobs, "migrate")
    with Queue(dsn) as q:
        q.send("send-email", {"to": "x"}, retry_limit=0)
        q.fail("send-email", q.fetch("send-email"), "SES said no")
        [letter] = q.find_jobs("dead-letters")
    done = run(jobs, "redrive", "dead-letters")
    assert done.exit_code == 0 and done.output.startswith(f"redriven: {letter.id} -> ")
    assert done.output.endswith("1 moved, 0 stayed\n")


def test_queue_shows_its_rate_limit_and_how_full_the_window_is(jobs: CliRunner, dsn: str) -> None:
    with Queue(dsn) as queue:
        queue.create_queue("email", rate_limit={"limit": 3, "period": 3600})
        queue.insert("email", [{"data": n} for n in range(5)])
        queue.fetch("email", 2)
    assert (
        "rate limit: 3 jobs started in any 3600 s; now 2 started, room for 1"
        in jobs.invoke(main, ["queue", "email"]).output
    )
    with Queue(dsn) as queue:
        queue.fetch("email", 2)
    assert "now 3 started, full for 3" in jobs.invoke(main, ["queue", "email"]).output


def test_queue_shows_its_group_rate_limit_and_the_fullest_groups(jobs: CliRunner, dsn: str) -> None:
    with Queue(dsn) as queue:
        queue.create_queue("github", group_rate_limit={"limit": 2, "period": 3600})
        queue.insert("github", [{"data": n, "group": {"id": g}} for g in ("token-a", "token-b") for n in range(3)])
        queue.fetch("github", 3)  # token-a's two (its third is held back)
        queue.fetch("github", 1)  # token-b's first
    output = jobs.invoke(main, ["queue", "github"]).output
    assert "group rate limit: 2 jobs started in any 3600 s per group" in output
    # The windows' table comes first (the active groups' follows).
    rows = [line.split("│")[1:4] for line in output.splitlines() if "token-" in line][:2]
    assert [[cell.strip() for cell in row][:2] for row in rows] == [["token-a", "2"], ["token-b", "1"]]
    assert rows[0][2].strip().startswith("full for 3") and rows[1][2].strip() == "1"


def test_queue_shows_its_fairness(jobs: CliRunner, dsn: str) -> None:
    with Queue(dsn) as queue:
        queue.create_queue("fair", fairness={"tiers": {"paid": 3, "free": 1}})
        queue.create_queue("plain")
    assert (
        "fairness: round robin between groups, jobs a turn per tier: free 1, paid 3"
        in jobs.invoke(main, ["queue", "fair"]).output
    )
    assert "fairness" not in jobs.invoke(main, ["queue", "plain"]).output


def test_wait_prints_the_finished_job_and_says_how_it_ended(jobs: CliRunner, dsn: str) -> None:
    with Queue(dsn) as queue:
        queue.create_queue("w")
        done_id, failed_id, open_id = (str(queue.send("w", {"n": n})) for n in range(3))
        first, second = queue.fetch("w", 2)
        queue.complete("w", [first], {"ok": True})
        queue.fail("w", [second], "boom", retryable=False)
    done = jobs.invoke(main, ["wait", done_id, "--timeout", "5"])
    assert done.exit_code == 0 and json.loads(done.output)["output"] == {"ok": True}
    assert jobs.invoke(main, ["wait", failed_id, "--timeout", "5"]).exit_code == 1
    still = jobs.invoke(main, ["wait", open_id, "--timeout", "0"])
    assert still.exit_code == 2 and json.loads(still.output)["state"] == "created"


def test_batch_prints_its_counts(jobs: CliRunner, dsn: str) -> None:
    with Queue(dsn) as queue:
        queue.create_queue("b")
        queue.insert("b", [{"data": n} for n in range(2)], batch={"id": "nightly"})
        queue.complete("b", queue.fetch("b"))
    shown = jobs.invoke(main, ["batch", "nightly"])
    assert shown.exit_code == 0
    assert {k: json.loads(shown.output)[k] for k in ("total", "completed", "unfinished")} == {
        "total": 2,
        "completed": 1,
        "unfinished": 1,
    }
    assert jobs.invoke(main, ["batch", "nope"]).exit_code == 1


def test_top_shows_each_queue_with_its_last_hour(jobs: CliRunner, dsn: str) -> None:
    run(jobs, "migrate")
    with Queue(dsn) as q:
        q.insert("send-email", [{"data": {"to": f"u{n}@b.c"}} for n in range(5)])
        q.complete("send-email", q.fetch("send-email", 3))
        q.record_history(now=datetime.now(UTC) + timedelta(minutes=2))
    shown = run(jobs, "top", "--once")
    assert shown.exit_code == 0, shown.output
    [row] = [line for line in shown.output.splitlines() if "send-email" in line]
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[1:5] == ["send-email", "2", "0", "0"]  # waiting, active, failed
    assert any(block in row for block in "▁▂▃▄▅▆▇█")  # the three finished jobs, in the sparkline
    assert " ms" in row or " s" in row  # wait and run p95 from the history
    assert run(jobs, "top", "--interval", "0").exit_code == 2  # too short: refused by name
