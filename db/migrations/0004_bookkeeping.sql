-- Ingestion bookkeeping: every run is auditable and resumable from these tables.

CREATE TABLE public.ingest_runs (
    run_id         uuid        PRIMARY KEY,
    job            text        NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    status         text        NOT NULL DEFAULT 'running',
    snapshot_time  timestamptz,              -- options runs: the run's shared snapshot time
    args           jsonb       NOT NULL DEFAULT '{}'::jsonb,
    summary        jsonb,
    CONSTRAINT ingest_runs_status_check CHECK (status IN ('running', 'ok', 'partial', 'failed'))
);
CREATE INDEX ingest_runs_job_started_idx ON public.ingest_runs (job, started_at DESC);

-- One row per flat file loaded into ohlcv; the ETag tells an unchanged file from a republished one.
CREATE TABLE public.ingest_files (
    source         text        NOT NULL,     -- s3://bucket or file://mirror
    key            text        NOT NULL,
    trading_date   date        NOT NULL,
    etag           text        NOT NULL,
    size_bytes     bigint,
    rows_read      integer     NOT NULL,
    rows_loaded    integer     NOT NULL,
    rows_rejected  integer     NOT NULL,
    rows_unknown   integer     NOT NULL,
    run_id         uuid,
    loaded_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ingest_files_pkey PRIMARY KEY (key)
);
CREATE INDEX ingest_files_date_idx ON public.ingest_files (trading_date);

-- Which lifecycle mode each hypertable runs in: TimescaleDB policies (community edition) or
-- application-enforced retention (Apache edition, where policies are unavailable).
CREATE TABLE public.hypertable_lifecycle (
    hypertable_name   text     PRIMARY KEY,
    retention_mode    text     NOT NULL,
    compression_mode  text     NOT NULL,
    drop_after        interval NOT NULL,
    compress_after    interval NOT NULL,
    CONSTRAINT hypertable_lifecycle_retention_check CHECK (retention_mode IN ('policy', 'application')),
    CONSTRAINT hypertable_lifecycle_compression_check CHECK (compression_mode IN ('policy', 'unavailable'))
);
