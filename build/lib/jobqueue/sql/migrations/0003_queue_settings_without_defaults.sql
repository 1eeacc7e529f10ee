-- A queue's settings are declared, with their defaults, in jobqueue/settings.py,
-- and create_queue gives every one of them: the column defaults were a second
-- copy that could drift. Code of the previous version gives every setting too
-- (it wrapped each in coalesce), so it keeps working during a deploy.
ALTER TABLE {{schema}}.queue
    ALTER COLUMN policy DROP DEFAULT,
    ALTER COLUMN retry_limit DROP DEFAULT,
    ALTER COLUMN retry_delay DROP DEFAULT,
    ALTER COLUMN retry_backoff DROP DEFAULT,
    ALTER COLUMN expire_in DROP DEFAULT,
    ALTER COLUMN retention DROP DEFAULT,
    ALTER COLUMN archive_after DROP DEFAULT,
    ALTER COLUMN delete_after DROP DEFAULT;
