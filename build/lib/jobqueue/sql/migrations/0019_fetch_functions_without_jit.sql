-- The fetch functions run without JIT: on a queue of 10 million jobs the planner's estimates
-- passed jit_above_cost and each call compiled its statement (25 ms, twenty times the fetch).
ALTER FUNCTION {{schema}}.fetch_jobs(text, integer, timestamptz, timestamptz) SET jit = off;
ALTER FUNCTION {{schema}}.lock_keys(text, integer, timestamptz) SET jit = off;
ALTER FUNCTION {{schema}}.lock_fifo_window(text, integer, integer, timestamptz) SET jit = off;
ALTER FUNCTION {{schema}}.lock_groups(text, integer, timestamptz, jsonb, integer) SET jit = off;
