-- Stock splits from the reference API (/v3/reference/splits), for A2's point-in-time
-- adjustment of the unadjusted flat-file bars (ohlcv keeps the bars as delivered).
-- Keyed by the vendor's symbol, not a ticker id: a split can arrive before its ticker does,
-- and A2 resolves symbols through public.tickers when it reads.
CREATE TABLE public.splits (
    ticker          text             NOT NULL,
    execution_date  date             NOT NULL,  -- the first session traded at the new price
    split_from      double precision NOT NULL,  -- a 10-for-1 split is from 1 to 10,
    split_to        double precision NOT NULL,  -- a 1-for-10 reverse split from 10 to 1
    vendor_id       text,
    created_at      timestamptz      NOT NULL DEFAULT now(),
    updated_at      timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT splits_pkey PRIMARY KEY (ticker, execution_date),
    CONSTRAINT splits_ratio_positive CHECK (split_from > 0 AND split_to > 0)
);
-- A2 reads the splits executed inside a look-back window.
CREATE INDEX splits_execution_date_idx ON public.splits (execution_date);
