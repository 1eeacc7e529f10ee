-- Flows (pg-boss 12's flow()): a job may depend on others. It waits (start_after far off) with
-- parents_left counting the parents not yet completed; the completion of the last one makes it
-- ready, in the statement that completes it. A dependency row outlives neither of its jobs'
-- records for long: maintenance removes those whose child is gone.
ALTER TABLE {{schema}}.job ADD COLUMN parents_left integer;

CREATE TABLE {{schema}}.dependency (
    child uuid NOT NULL,
    parent uuid NOT NULL,
    PRIMARY KEY (child, parent)
);
CREATE INDEX dependency_parent ON {{schema}}.dependency (parent);
