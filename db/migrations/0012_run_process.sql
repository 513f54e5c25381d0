-- The process behind a 'running' ledger row, beside its database backend: the host, its pid and
-- its start (the boot and the kernel's start tick), so that any later command on that host can
-- tell a run whose process is gone (killed) from one still working, even while a connection
-- of the dead process lingers on the server.
ALTER TABLE public.ingest_runs
    ADD COLUMN process_host  text,
    ADD COLUMN process_pid   integer,
    ADD COLUMN process_start text;     -- '<boot id>:<start tick>' (Linux); NULL elsewhere

CREATE INDEX ingest_runs_running_idx ON public.ingest_runs (job) WHERE status = 'running';

-- KapMan's clock as the database knows it, for SQL readers (the runbook dashboards' default NOW):
-- the recorded frozen clock of a sandbox database, else the server's now().  The same answer as
-- kapman.db.lifecycle.warehouse_now() in a shell without KAPMAN_NOW.
CREATE FUNCTION public.kapman_now() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT frozen_at FROM public.lifecycle_clock WHERE mode = 'frozen'), now())
$$;
