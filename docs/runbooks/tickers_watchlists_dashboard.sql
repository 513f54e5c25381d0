-- Tickers and watchlists dashboard: the ticker universe and how the watchlists resolve against it.
--
--   psql -X -v ON_ERROR_STOP=1 -f docs/runbooks/tickers_watchlists_dashboard.sql
--   docker exec -i kapman-db psql -U kapman -d kapman -v ON_ERROR_STOP=1 < docs/runbooks/tickers_watchlists_dashboard.sql
--
-- No variables.  Read-only: it runs on a replica or with default_transaction_read_only=on.

\set QUIET on
\pset null '(null)'
\set QUIET off
\echo 'Tickers and watchlists dashboard'

-- One line.  FAIL: no tickers (nothing can be ingested); WARN: an active watchlist symbol has no
-- ticker or an inactive one; OK otherwise.
\echo
\echo '== verdict =='
WITH members AS (
    SELECT DISTINCT w.symbol, t.id, t.active
      FROM public.watchlists AS w LEFT JOIN public.tickers AS t ON t.symbol = w.symbol
     WHERE w.active
), c AS (
    SELECT (SELECT count(*) FROM public.tickers)                   AS tickers,
           (SELECT count(*) FROM members)                          AS symbols,
           (SELECT count(*) FROM members WHERE id IS NULL)         AS unresolved,
           (SELECT count(*) FROM members WHERE NOT active)         AS inactive
)
SELECT CASE WHEN tickers = 0 THEN 'FAIL' WHEN unresolved + inactive > 0 OR symbols = 0 THEN 'WARN'
            ELSE 'OK' END                                                                        AS verdict,
       CASE WHEN tickers = 0 THEN 'no tickers: python -m scripts.ingest_tickers --force'
            WHEN symbols = 0 THEN 'no active watchlist symbol: python -m scripts.ingest_watchlists'
            WHEN unresolved + inactive > 0
                THEN unresolved || ' active watchlist symbols without a ticker, ' || inactive
                     || ' with an inactive one: correct data/watchlists/*.txt'
            ELSE tickers || ' tickers; all ' || symbols || ' active watchlist symbols resolve' END AS reason
  FROM c;

-- Look for: some 10-12 thousand active tickers after a full load; last_updated_utc recent.
\echo
\echo '== ticker universe =='
SELECT count(*)                               AS tickers,
       count(*) FILTER (WHERE active)         AS active,
       count(*) FILTER (WHERE NOT active)     AS inactive,
       count(DISTINCT type)                   AS types,
       count(DISTINCT primary_exchange)       AS exchanges,
       max(last_updated_utc)                  AS last_updated_utc,
       max(updated_at)                        AS last_written_at
  FROM public.tickers;

-- Look for: CS (common stock) and ETF dominating; a (null) type or exchange is a provider gap.
\echo
\echo '== universe by type, exchange and active =='
SELECT t.type,
       t.primary_exchange,
       t.active,
       count(*) AS tickers
  FROM public.tickers AS t
 GROUP BY t.type, t.primary_exchange, t.active
 ORDER BY t.type NULLS LAST, t.primary_exchange NULLS LAST, t.active DESC;

-- One line per watchlist, and "(all watchlists)" counting each symbol once.  Look for: active =
-- the number of symbols in the watchlist file; inactive are symbols removed from the file (kept
-- for history, with deactivated_at).
\echo
\echo '== watchlist membership =='
SELECT *
  FROM (
    SELECT w.watchlist_id,
           count(*)                                      AS total,
           count(*) FILTER (WHERE w.active)              AS active,
           count(*) FILTER (WHERE NOT w.active)          AS inactive,
           min(w.effective_date)                         AS first_effective_date,
           max(w.effective_date)                         AS last_effective_date,
           max(w.deactivated_at)                         AS last_deactivated_at,
           string_agg(DISTINCT w.source, ', ')           AS sources
      FROM public.watchlists AS w
     GROUP BY w.watchlist_id
    UNION ALL
    SELECT '(all watchlists)',
           count(DISTINCT w.symbol),
           count(DISTINCT w.symbol) FILTER (WHERE w.active),
           count(DISTINCT w.symbol) FILTER (WHERE NOT w.active),
           min(w.effective_date),
           max(w.effective_date),
           max(w.deactivated_at),
           string_agg(DISTINCT w.source, ', ')
      FROM public.watchlists AS w
) AS m
 ORDER BY m.watchlist_id = '(all watchlists)', m.watchlist_id;

-- Active watchlist symbols with no row in tickers: options ingestion and analytics skip them.
-- Expected: 0 rows (or symbols you know the ticker load filters out).
\echo
\echo '== unresolved active watchlist symbols, no ticker (expected: 0 rows) =='
SELECT w.watchlist_id, w.symbol, w.effective_date, w.source
  FROM public.watchlists AS w
  LEFT JOIN public.tickers AS t ON t.symbol = w.symbol
 WHERE w.active
   AND t.id IS NULL
 ORDER BY w.symbol, w.watchlist_id;

-- Delisted or renamed tickers that a watchlist still asks for.  Expected: 0 rows; fix the
-- watchlist file (new symbol) and reload it.
\echo
\echo '== inactive tickers still on active watchlists (expected: 0 rows) =='
SELECT w.watchlist_id, t.symbol, t.name, t.type, t.delisted_utc, t.last_updated_utc
  FROM public.watchlists AS w
  JOIN public.tickers AS t ON t.symbol = w.symbol
 WHERE w.active
   AND NOT t.active
 ORDER BY t.symbol, w.watchlist_id;
