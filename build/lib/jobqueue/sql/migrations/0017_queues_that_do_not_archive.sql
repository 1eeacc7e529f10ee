-- A queue whose finished jobs nobody looks up later deletes them at archive_after instead of
-- archiving them (the setting `archive`): one delete instead of a copy into the archive and a
-- purge. Existing queues archive, as before; like every setting, it has no default here.
ALTER TABLE {{schema}}.queue ADD COLUMN archive boolean NOT NULL DEFAULT true;
ALTER TABLE {{schema}}.queue ALTER COLUMN archive DROP DEFAULT;
