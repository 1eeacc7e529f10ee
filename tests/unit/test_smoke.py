def test_imports() -> None:
    import jobqueue

    assert jobqueue.Queue
