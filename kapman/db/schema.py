"""What the A6 schema must look like: the single source of truth for validation and tests."""

from __future__ import annotations

from datetime import timedelta

#: Every table (and view) in schema public after the migrations.
EXPECTED_TABLES = frozenset({
    "tickers", "watchlists", "ohlcv", "options_chains", "daily_snapshots",
    "ingest_runs", "ingest_files", "hypertable_lifecycle", "lifecycle_clock", "schema_migrations",
    "splits",
})
#: Metadata tables that are not empty after a rebuild.
METADATA_TABLES = frozenset({"schema_migrations", "hypertable_lifecycle", "lifecycle_clock"})
#: hypertable -> (time column, chunk interval)
HYPERTABLES = {
    "ohlcv": ("date", timedelta(days=30)),
    "options_chains": ("time", timedelta(days=7)),
    "daily_snapshots": ("time", timedelta(days=7)),
}
#: Hypertables governed by compression and retention (daily_snapshots since migration 0012).
LIFECYCLE_TABLES = ("ohlcv", "options_chains", "daily_snapshots")
RETENTION = timedelta(days=730)
COMPRESS_AFTER = timedelta(days=120)
#: Set to 0 (unlimited) on the database by migration 0009, so one write may rewrite a compressed day.
DECOMPRESSION_LIMIT_GUC = "timescaledb.max_tuples_decompressed_per_dml_transaction"
OPTIONS_KEY = ("time", "ticker_id", "expiration_date", "strike_price", "option_type")
#: One split per ticker and execution date.
SPLITS_KEY = ("ticker", "execution_date")
FORBIDDEN_TABLE = "ohlcv_daily"
#: Symbols are stored exactly as the source writes them (case-sensitive, 0008): table -> the one
#: CHECK constraint on its symbol, which must not fold case.
SYMBOL_CHECKS = {"tickers": "tickers_symbol_nonblank", "watchlists": "watchlists_symbol_nonblank"}
