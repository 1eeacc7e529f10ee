-- Snooze: a handler's "run me again in N seconds", which uses up no attempt. The count
-- bounds how often one job may snooze, so that nothing snoozes forever.
ALTER TABLE {{schema}}.job ADD COLUMN snoozes integer NOT NULL DEFAULT 0;
