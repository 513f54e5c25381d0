-- How fresh each contract's prices are (all nullable: a plan without quotes or trades has none,
-- and rows stored before this migration have none).  The vendor's snapshot gives, per contract,
-- the last quote's and the last trade's times (ns) and whether they are real-time or delayed;
-- an eight-month-old quote otherwise looks current.  `last` stays the last trade's price; the
-- session's close is kept beside it, so a contract without a last trade still has its day close.
ALTER TABLE public.options_chains
    ADD COLUMN quote_updated_at timestamptz,   -- last_quote.last_updated
    ADD COLUMN trade_updated_at timestamptz,   -- last_trade.sip_timestamp
    ADD COLUMN timeframe        text,          -- 'REAL-TIME' or 'DELAYED' (the quote's, else the trade's)
    ADD COLUMN day_close        double precision;  -- day.close
