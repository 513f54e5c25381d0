-- create_hypertable added a (time DESC) index to options_chains and daily_snapshots, whose
-- primary keys already lead with time: every time predicate, in either order, is served by the
-- key.  Every row written paid for that third index (A2 over 40 full-market dates: 42.6 s with it,
-- 40.2 s without) and every chunk stored it.  ohlcv keeps its (date DESC) index: its key leads
-- with ticker_id.  Applied in place by python -m scripts.db.migrate.
DROP INDEX public.daily_snapshots_time_idx;
DROP INDEX public.options_chains_time_idx;
