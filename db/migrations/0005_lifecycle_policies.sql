-- Compression (segment by ticker) after 120 days and retention after 730 days on ohlcv and
-- options_chains.  Both need the community (timescale-licensed) edition; under the Apache
-- edition the same migration records that retention is enforced by the application
-- (kapman.db.retention) and raises one warning.
DO $$
DECLARE
    licensed boolean := current_setting('timescaledb.license', true) = 'timescale';
BEGIN
    IF licensed THEN
        ALTER TABLE public.ohlcv SET (
            timescaledb.compress,
            timescaledb.compress_segmentby = 'ticker_id',
            timescaledb.compress_orderby = 'date DESC'
        );
        ALTER TABLE public.options_chains SET (
            timescaledb.compress,
            timescaledb.compress_segmentby = 'ticker_id',
            timescaledb.compress_orderby = 'time DESC, expiration_date, strike_price, option_type'
        );
        PERFORM add_compression_policy('public.ohlcv', compress_after => INTERVAL '120 days');
        PERFORM add_compression_policy('public.options_chains', compress_after => INTERVAL '120 days');
        PERFORM add_retention_policy('public.ohlcv', drop_after => INTERVAL '730 days');
        PERFORM add_retention_policy('public.options_chains', drop_after => INTERVAL '730 days');
        INSERT INTO public.hypertable_lifecycle VALUES
            ('ohlcv', 'policy', 'policy', INTERVAL '730 days', INTERVAL '120 days'),
            ('options_chains', 'policy', 'policy', INTERVAL '730 days', INTERVAL '120 days');
    ELSE
        INSERT INTO public.hypertable_lifecycle VALUES
            ('ohlcv', 'application', 'unavailable', INTERVAL '730 days', INTERVAL '120 days'),
            ('options_chains', 'application', 'unavailable', INTERVAL '730 days', INTERVAL '120 days');
        RAISE WARNING 'TimescaleDB license is "%" (not "timescale"): compression and retention policies are unavailable; KapMan enforces 730-day retention itself after each ingestion',
            coalesce(current_setting('timescaledb.license', true), 'unknown');
    END IF;
END
$$;
