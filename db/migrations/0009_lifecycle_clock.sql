-- The clock the database's lifecycle follows.  'real': KapMan's clock is the wall clock, so the
-- TimescaleDB policies (community edition) run on the server's schedule.  'frozen': KapMan's clock
-- (KAPMAN_NOW, e.g. the sandbox's 2025-12-19) sits away from real time; the policies are kept
-- but paused, and KapMan enforces the same windows itself, counting from frozen_at, the newest
-- instant KapMan's clock has shown this database.  A shell without KAPMAN_NOW then still counts
-- from frozen_at, never from the real date.  One row, written by the rebuild (kapman.db.lifecycle).
CREATE TABLE public.lifecycle_clock (
    singleton    boolean     PRIMARY KEY DEFAULT true,
    mode         text        NOT NULL DEFAULT 'real',
    frozen_at    timestamptz,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT lifecycle_clock_singleton_check CHECK (singleton),
    CONSTRAINT lifecycle_clock_mode_check CHECK (mode IN ('real', 'frozen')),
    CONSTRAINT lifecycle_clock_frozen_check CHECK ((mode = 'frozen') = (frozen_at IS NOT NULL))
);
INSERT INTO public.lifecycle_clock (mode) VALUES ('real');

-- Writes into compressed chunks (a backfill or a republished file older than the compression
-- window, community edition) decompress the segments they touch; TimescaleDB stops a transaction
-- after 100,000 such tuples by default, less than one day file of the full market.  Unlimited
-- for every session of this database: a day's write is one transaction and must not fail midway.
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET timescaledb.max_tuples_decompressed_per_dml_transaction = 0',
                   current_database());
END
$$;
