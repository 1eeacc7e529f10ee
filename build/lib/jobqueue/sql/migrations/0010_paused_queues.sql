-- Pause and resume a queue: a paused queue's fetches claim nothing (its workers return at once)
-- while sends and schedules go on adding jobs.
ALTER TABLE {{schema}}.queue ADD COLUMN paused boolean NOT NULL DEFAULT false;
