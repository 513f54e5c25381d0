-- Market data hypertables.  No foreign keys to tickers on the hypertables: every writer
-- resolves symbols through public.tickers before it writes, and per-row FK triggers would
-- halve bulk COPY throughput.  Tickers are never deleted (only marked inactive).

-- Daily bars, one row per (ticker, trading date).  Prices are double precision: they come
-- from the flat files as decimal text with at most 4-6 significant decimals and are only
-- ever used in floating-point arithmetic downstream.
CREATE TABLE public.ohlcv (
    ticker_id     uuid             NOT NULL,
    date          date             NOT NULL,
    open          double precision NOT NULL,
    high          double precision NOT NULL,
    low           double precision NOT NULL,
    close         double precision NOT NULL,
    volume        double precision NOT NULL,  -- fractional volume exists in the source
    vwap          double precision,
    transactions  bigint,
    created_at    timestamptz      NOT NULL DEFAULT now(),
    updated_at    timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT ohlcv_pkey PRIMARY KEY (ticker_id, date)
);
-- 30-day chunks: about 21 trading days x ~11,000 tickers = ~230k rows (~40 MB with the
-- index) per chunk, far below a quarter of memory, and retention drops history in
-- month-sized steps.
SELECT create_hypertable('public.ohlcv', by_range('date', INTERVAL '30 days'));
-- create_hypertable adds the (date DESC) index that date-range scans use.

-- Options-chain snapshots.  Contracts are implicit in these rows; there is no contracts table.
CREATE TABLE public.options_chains (
    time                 timestamptz      NOT NULL,  -- one snapshot time per ingestion run
    ticker_id            uuid             NOT NULL,  -- the underlying
    expiration_date      date             NOT NULL,
    strike_price         numeric(12,4)    NOT NULL,
    option_type          char(1)          NOT NULL,
    contract_symbol      text             NOT NULL,
    shares_per_contract  integer,
    underlying_price     double precision,
    bid                  double precision,
    ask                  double precision,
    last                 double precision,
    volume               bigint,
    open_interest        bigint,
    implied_volatility   double precision,
    delta                double precision,
    gamma                double precision,
    theta                double precision,
    vega                 double precision,
    created_at           timestamptz      NOT NULL DEFAULT now(),
    updated_at           timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT options_chains_pkey PRIMARY KEY (time, ticker_id, expiration_date, strike_price, option_type),
    CONSTRAINT options_chains_option_type_check CHECK (option_type IN ('C', 'P'))
);
-- 7-day chunks: one snapshot a day of ~150 symbols x ~2,000 contracts is ~2M rows a week.
SELECT create_hypertable('public.options_chains', by_range('time', INTERVAL '7 days'));
CREATE INDEX options_chains_ticker_time_idx ON public.options_chains (ticker_id, time DESC);

-- Per (ticker, trading date) analytics; A2 and A3 write different columns of the same row.
-- time is the trading date at 16:00 America/New_York, stored in UTC.
CREATE TABLE public.daily_snapshots (
    time                       timestamptz NOT NULL,
    ticker_id                  uuid        NOT NULL,
    technical_indicators_json  jsonb,
    price_metrics_json         jsonb,
    ta_computed_at             timestamptz,
    ta_version                 text,
    dealer_metrics_json        jsonb,
    dealer_computed_at         timestamptz,
    dealer_version             text,
    dealer_snapshot_time       timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT daily_snapshots_pkey PRIMARY KEY (time, ticker_id)
);
-- 7-day chunks: ~11,000 rows a trading day with a few kB of JSON each.
SELECT create_hypertable('public.daily_snapshots', by_range('time', INTERVAL '7 days'));
CREATE INDEX daily_snapshots_ticker_time_idx ON public.daily_snapshots (ticker_id, time DESC);
