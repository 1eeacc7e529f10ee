from jobqueue import Queue


def test_send_fetch_complete(queue: Queue) -> None:
    queue.create_queue("q")
    job_id = queue.send("q", {"a": 1})
    assert job_id
    jobs = queue.fetch("q", 10)
    assert [j.id for j in jobs] == [job_id]
    assert jobs[0].data == {"a": 1}
    assert queue.complete("q", jobs) == [job_id]
    job = queue.get_job(job_id)
    assert job is not None and job.state == "completed"
