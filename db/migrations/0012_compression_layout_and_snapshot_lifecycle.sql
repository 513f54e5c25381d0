-- Compression layouts chosen by measurement, and a lifecycle for daily_snapshots (README,
-- "Storage and compression").
--
-- ohlcv: no segment-by column, ordered by (ticker_id, date DESC).  Segmenting by ticker left one
-- ticker's month (about 21 rows) per segment, too few for the per-segment headers to pay; batches
-- of 1,000 rows ordered by ticker keep each ticker's days together (its prices and dates compress
-- as a run) and the batches' min/max metadata on ticker_id still finds one symbol's rows.
-- options_chains keeps 0005's layout (segments per underlying, ordered by time first): ordering
-- by contract first measured worse.
-- daily_snapshots: compressed after 120 days and dropped after 730, like the data it derives
-- from; batches of 1,000 rows ordered by ticker, so the indicator documents' repeated keys
-- compress across rows.  On the Apache edition KapMan drops its chunks itself (kapman.db.retention).
-- Settings apply to chunks compressed from now on; chunks already compressed keep theirs.
DO $$
DECLARE
    licensed boolean := current_setting('timescaledb.license', true) = 'timescale';
BEGIN
    IF licensed THEN
        ALTER TABLE public.ohlcv SET (
            timescaledb.compress_segmentby = '',
            timescaledb.compress_orderby = 'ticker_id, date DESC'
        );
        ALTER TABLE public.daily_snapshots SET (
            timescaledb.compress,
            timescaledb.compress_segmentby = '',
            timescaledb.compress_orderby = 'ticker_id, time DESC'
        );
        PERFORM add_compression_policy('public.daily_snapshots', compress_after => INTERVAL '120 days');
        PERFORM add_retention_policy('public.daily_snapshots', drop_after => INTERVAL '730 days');
        INSERT INTO public.hypertable_lifecycle VALUES
            ('daily_snapshots', 'policy', 'policy', INTERVAL '730 days', INTERVAL '120 days');
    ELSE
        INSERT INTO public.hypertable_lifecycle VALUES
            ('daily_snapshots', 'application', 'unavailable', INTERVAL '730 days', INTERVAL '120 days');
    END IF;
END
$$;
