-- When a job was archived was written with every archived job and never read: 8 bytes less per
-- archived job (the rows archived before keep theirs until they are deleted).
ALTER TABLE {{schema}}.archive DROP COLUMN archived_on;
