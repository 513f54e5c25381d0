-- The run ledger every step writes (kapman.db.runs.recorded): wall-clock start and finish with
-- KapMan's clock beside them, the outcome of the step's result, why a run failed, and the backend
-- that holds the run so that a run killed without a word can be told apart from one still alive.

ALTER TABLE public.ingest_runs
    ADD COLUMN clock_started_at  timestamptz,   -- KapMan's clock (KAPMAN_NOW or real time) at the start
    ADD COLUMN clock_finished_at timestamptz,
    ADD COLUMN error             text,          -- the error class and message of a failed run
    ADD COLUMN backend_pid       integer,       -- the ledger connection's backend while running
    ADD COLUMN backend_start     timestamptz;

ALTER TABLE public.ingest_runs DROP CONSTRAINT ingest_runs_status_check;
ALTER TABLE public.ingest_runs ADD CONSTRAINT ingest_runs_status_check CHECK (status IN (
    'running', 'ok', 'partial', 'failed', 'nothing-to-do', 'interrupted', 'abandoned'));

ALTER TABLE public.ingest_runs ADD COLUMN duration interval
    GENERATED ALWAYS AS (finished_at - started_at) STORED;
