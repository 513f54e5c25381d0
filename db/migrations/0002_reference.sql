-- The ticker universe and the watchlists that scope all non-OHLCV work.

-- Ticker ids are deterministic (uuid v5 of the symbol in KapMan's namespace, see
-- kapman.ids.ticker_id) so a repave reproduces them exactly.
CREATE TABLE public.tickers (
    id                uuid PRIMARY KEY,
    symbol            text        NOT NULL UNIQUE,
    name              text,
    market            text,
    locale            text,
    type              text,
    primary_exchange  text,
    currency_name     text,
    cik               text,
    composite_figi    text,
    share_class_figi  text,
    active            boolean     NOT NULL DEFAULT true,
    delisted_utc      timestamptz,
    last_updated_utc  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tickers_symbol_upper CHECK (symbol = upper(symbol) AND symbol <> '')
);
CREATE INDEX tickers_type_idx ON public.tickers (type) WHERE active;

CREATE TABLE public.watchlists (
    watchlist_id    text        NOT NULL,
    symbol          text        NOT NULL,
    active          boolean     NOT NULL DEFAULT true,
    source          text        NOT NULL,
    effective_date  date        NOT NULL,
    deactivated_at  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT watchlists_pkey PRIMARY KEY (watchlist_id, symbol),
    CONSTRAINT watchlists_symbol_upper CHECK (symbol = upper(symbol) AND symbol <> '')
);
CREATE INDEX watchlists_active_symbol_idx ON public.watchlists (symbol) WHERE active;
