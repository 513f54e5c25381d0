-- Symbols are case-sensitive at the source: in the CQS convention a lower-case letter marks a
-- class (AAp is a preferred, AAP another company; w warrants, r rights).  Stored exactly as the
-- source writes them, so the upper-case checks of 0002 go; a symbol stays non-blank and trimmed.
ALTER TABLE public.tickers DROP CONSTRAINT tickers_symbol_upper;
ALTER TABLE public.tickers ADD CONSTRAINT tickers_symbol_nonblank
    CHECK (symbol <> '' AND symbol = btrim(symbol));

ALTER TABLE public.watchlists DROP CONSTRAINT watchlists_symbol_upper;
ALTER TABLE public.watchlists ADD CONSTRAINT watchlists_symbol_nonblank
    CHECK (symbol <> '' AND symbol = btrim(symbol));
