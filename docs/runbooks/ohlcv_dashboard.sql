-- OHLCV dashboard: coverage, calendar, gaps and sanity of public.ohlcv, plus the flat-file ledger.
--
--   psql -X -v ON_ERROR_STOP=1 [-v DAYS_BACK=30] [-v SYMBOL_LIMIT=25] -f docs/runbooks/ohlcv_dashboard.sql
--   docker exec -i kapman-db psql -U kapman -d kapman -v ON_ERROR_STOP=1 -v DAYS_BACK=30 -v SYMBOL_LIMIT=25 < docs/runbooks/ohlcv_dashboard.sql
--
-- DAYS_BACK (default 30): the window is the DAYS_BACK calendar days ending at the latest date with
--   bars (today on an empty table), so a dashboard run on a weekend or before today's load still
--   shows full days.  How stale that latest date is appears under "coverage".
-- SYMBOL_LIMIT (default 25): rows shown in the per-symbol listings.
-- Expected trading days are derived as weekdays (Mon-Fri); the SQL knows no exchange holidays, so
-- a weekday without rows is reported as "no data (holiday or missing)" for you to judge.
-- Read-only: it runs on a replica or with default_transaction_read_only=on.

\set QUIET on
\if :{?DAYS_BACK} \else \set DAYS_BACK 30 \endif
\if :{?SYMBOL_LIMIT} \else \set SYMBOL_LIMIT 25 \endif
\pset null '(null)'
\set QUIET off
\echo 'OHLCV dashboard:' DAYS_BACK=:DAYS_BACK SYMBOL_LIMIT=:SYMBOL_LIMIT

-- Whole table.  Look for: max_date = the last trading day; weekdays_since_max_date 0 or 1
-- (1 = today's file not loaded yet); unresolved_ticker_rows 0 (bars whose ticker_id is not in tickers).
\echo
\echo '== coverage =='
WITH per_ticker AS (
    SELECT o.ticker_id, count(*) AS rows, min(o.date) AS min_date, max(o.date) AS max_date
      FROM public.ohlcv AS o
     GROUP BY o.ticker_id
)
SELECT coalesce(sum(p.rows), 0)                               AS rows,
       count(*)                                               AS tickers,
       coalesce(sum(p.rows) FILTER (WHERE t.id IS NULL), 0)   AS unresolved_ticker_rows,
       min(p.min_date)                                        AS min_date,
       max(p.max_date)                                        AS max_date,
       (SELECT count(*)
          FROM generate_series(max(p.max_date) + 1, current_date, interval '1 day') AS g(day)
         WHERE extract(isodow FROM g.day) < 6)                AS weekdays_since_max_date
  FROM per_ticker AS p
  LEFT JOIN public.tickers AS t ON t.id = p.ticker_id;

-- One line per weekday of the window (and per weekend day that has rows, which it should not).
-- Look for: "ok" everywhere; "no data (holiday or missing)" only on exchange holidays; "low" means
-- fewer than 90 % of the window's median ticker count, i.e. a partial file.
\echo
\echo '== rows per day (last DAYS_BACK calendar days up to the latest bar date; expected trading days = weekdays) =='
WITH win AS (
    SELECT coalesce(max(date), current_date)                               AS end_date,
           coalesce(max(date), current_date) - (:'DAYS_BACK'::int - 1)     AS start_date
      FROM public.ohlcv
), days AS (
    SELECT g.day::date AS day
      FROM win, generate_series(win.start_date, win.end_date, interval '1 day') AS g(day)
), per_day AS (
    SELECT o.date, count(*) AS rows
      FROM public.ohlcv AS o, win
     WHERE o.date BETWEEN win.start_date AND win.end_date
     GROUP BY o.date
), typical AS (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY rows) AS median_rows FROM per_day
)
SELECT d.day                          AS date,
       to_char(d.day, 'Dy')           AS dow,
       coalesce(p.rows, 0)            AS rows,
       CASE
           WHEN extract(isodow FROM d.day) >= 6 THEN 'weekend rows (unexpected)'
           WHEN p.rows IS NULL                  THEN 'no data (holiday or missing)'
           WHEN p.rows < 0.9 * typical.median_rows THEN 'low (< 90% of window median)'
           ELSE 'ok'
       END                            AS status
  FROM days AS d
  LEFT JOIN per_day AS p ON p.date = d.day
 CROSS JOIN typical
 WHERE extract(isodow FROM d.day) < 6 OR p.rows IS NOT NULL
 ORDER BY d.day DESC;

-- A gap is a trading day of the window (a date on which any ticker has a bar, so holidays never
-- count) that a ticker skipped between its first and last bar of the window.
-- Expected: 0 tickers with gaps (a few halted names are normal on a real market).
\echo
\echo '== gaps: tickers missing days in the window they traded before and after (expected: 0 rows) =='
WITH win AS (
    SELECT coalesce(max(date), current_date)                               AS end_date,
           coalesce(max(date), current_date) - (:'DAYS_BACK'::int - 1)     AS start_date
      FROM public.ohlcv
), trading_days AS (
    SELECT DISTINCT o.date FROM public.ohlcv AS o, win WHERE o.date BETWEEN win.start_date AND win.end_date
), span AS (
    SELECT o.ticker_id, min(o.date) AS first_day, max(o.date) AS last_day, count(*) AS bars
      FROM public.ohlcv AS o, win
     WHERE o.date BETWEEN win.start_date AND win.end_date
     GROUP BY o.ticker_id
), gapped AS (
    SELECT s.*,
           (SELECT count(*) FROM trading_days AS td WHERE td.date BETWEEN s.first_day AND s.last_day) - s.bars
               AS missing_days
      FROM span AS s
)
SELECT t.symbol,
       g.first_day,
       g.last_day,
       g.missing_days,
       (SELECT string_agg(td.date::text, ', ' ORDER BY td.date)
          FROM trading_days AS td
         WHERE td.date BETWEEN g.first_day AND g.last_day
           AND NOT EXISTS (SELECT 1 FROM public.ohlcv AS o WHERE o.ticker_id = g.ticker_id AND o.date = td.date)
       )                                                       AS missing_dates
  FROM gapped AS g
  JOIN public.tickers AS t ON t.id = g.ticker_id
 WHERE g.missing_days > 0
 ORDER BY g.missing_days DESC, t.symbol
 LIMIT :'SYMBOL_LIMIT'::int;

-- Whole table, one line per rule.  Expected: violations 0 on every line.
\echo
\echo '== OHLC sanity, all history (expected: violations 0) =='
WITH c AS (
    SELECT count(*) FILTER (WHERE high < low)                                    AS high_below_low,
           count(*) FILTER (WHERE open < low OR open > high)                     AS open_outside_range,
           count(*) FILTER (WHERE close < low OR close > high)                   AS close_outside_range,
           count(*) FILTER (WHERE least(open, high, low, close) <= 0)            AS non_positive_price,
           count(*) FILTER (WHERE volume < 0)                                    AS negative_volume,
           count(*) FILTER (WHERE 'NaN' IN (open, high, low, close, volume)
                               OR 'Infinity' IN (open, high, low, close, volume)
                               OR '-Infinity' IN (open, high, low, close, volume)) AS nan_or_infinite
      FROM public.ohlcv
)
SELECT v.rule,
       v.violations,
       CASE WHEN v.violations = 0 THEN 'ok' ELSE 'VIOLATION' END AS result
  FROM c
 CROSS JOIN LATERAL (VALUES
       ('high < low',                        c.high_below_low),
       ('open outside [low, high]',          c.open_outside_range),
       ('close outside [low, high]',         c.close_outside_range),
       ('open/high/low/close <= 0',          c.non_positive_price),
       ('volume < 0',                        c.negative_volume),
       ('NaN or infinite price or volume',   c.nan_or_infinite)
 ) AS v(rule, violations);

-- Not an error by itself (halted or barely traded names), but a day where many tickers have zero
-- volume points at a bad file.  First line: counts; then the symbols with zero-volume bars in the window.
\echo
\echo '== zero-volume rows =='
WITH win AS (
    SELECT coalesce(max(date), current_date) - (:'DAYS_BACK'::int - 1) AS start_date FROM public.ohlcv
)
SELECT count(*) FILTER (WHERE o.volume = 0)                                  AS zero_volume_rows_all_history,
       count(*) FILTER (WHERE o.volume = 0 AND o.date >= win.start_date)     AS zero_volume_rows_in_window,
       count(DISTINCT o.ticker_id) FILTER (WHERE o.volume = 0 AND o.date >= win.start_date)
                                                                            AS tickers_in_window
  FROM public.ohlcv AS o, win;

WITH win AS (
    SELECT coalesce(max(date), current_date) - (:'DAYS_BACK'::int - 1) AS start_date FROM public.ohlcv
)
SELECT t.symbol, count(*) AS zero_volume_days, min(o.date) AS first_date, max(o.date) AS last_date
  FROM public.ohlcv AS o
  JOIN public.tickers AS t ON t.id = o.ticker_id
 CROSS JOIN win
 WHERE o.volume = 0 AND o.date >= win.start_date
 GROUP BY t.symbol
 ORDER BY zero_volume_days DESC, t.symbol
 LIMIT :'SYMBOL_LIMIT'::int;

-- Fewest bars in the window first (then lowest average volume): new listings, delistings and
-- illiquid names.  Look for: well-known symbols here mean they are being dropped.
\echo
\echo '== thinnest symbols in the window (by bars, then average volume) =='
WITH win AS (
    SELECT coalesce(max(date), current_date)                               AS end_date,
           coalesce(max(date), current_date) - (:'DAYS_BACK'::int - 1)     AS start_date
      FROM public.ohlcv
)
SELECT t.symbol,
       t.type,
       count(*)                    AS bars,
       round(avg(o.volume)::numeric, 0) AS avg_volume,
       min(o.date)                 AS first_date,
       max(o.date)                 AS last_date
  FROM public.ohlcv AS o
  JOIN public.tickers AS t ON t.id = o.ticker_id
 CROSS JOIN win
 WHERE o.date BETWEEN win.start_date AND win.end_date
 GROUP BY t.symbol, t.type
 ORDER BY bars, avg_volume, t.symbol
 LIMIT :'SYMBOL_LIMIT'::int;

-- Highest average volume in the window.  Look for: the usual index ETFs and mega caps on top.
\echo
\echo '== busiest symbols in the window (by average volume) =='
WITH win AS (
    SELECT coalesce(max(date), current_date)                               AS end_date,
           coalesce(max(date), current_date) - (:'DAYS_BACK'::int - 1)     AS start_date
      FROM public.ohlcv
)
SELECT t.symbol,
       t.type,
       count(*)                          AS bars,
       round(avg(o.volume)::numeric, 0)  AS avg_volume,
       round(avg(o.close)::numeric, 4)   AS avg_close,
       max(o.date)                       AS last_date
  FROM public.ohlcv AS o
  JOIN public.tickers AS t ON t.id = o.ticker_id
 CROSS JOIN win
 WHERE o.date BETWEEN win.start_date AND win.end_date
 GROUP BY t.symbol, t.type
 ORDER BY avg_volume DESC, t.symbol
 LIMIT :'SYMBOL_LIMIT'::int;

-- Active watchlist symbols against the latest OHLCV date.  Expected: without_bar 0 per watchlist,
-- and the listing below it empty (reasons: no ticker, inactive ticker, or no bar on that date).
\echo
\echo '== watchlist coverage on the latest OHLCV date =='
WITH latest AS (
    SELECT max(date) AS day FROM public.ohlcv
), members AS (
    SELECT w.watchlist_id,
           w.symbol,
           t.id AS ticker_id,
           EXISTS (SELECT 1 FROM public.ohlcv AS o, latest WHERE o.ticker_id = t.id AND o.date = latest.day) AS has_bar
      FROM public.watchlists AS w
      LEFT JOIN public.tickers AS t ON t.symbol = w.symbol
     WHERE w.active
)
SELECT m.watchlist_id,
       (SELECT day FROM latest)                         AS latest_date,
       count(*)                                         AS active_symbols,
       count(m.ticker_id)                               AS resolved,
       count(*) FILTER (WHERE m.has_bar)                AS with_bar,
       count(*) FILTER (WHERE NOT m.has_bar)            AS without_bar
  FROM members AS m
 GROUP BY m.watchlist_id
 ORDER BY m.watchlist_id;

WITH latest AS (
    SELECT max(date) AS day FROM public.ohlcv
)
SELECT w.symbol,
       string_agg(w.watchlist_id, ', ' ORDER BY w.watchlist_id) AS watchlists,
       CASE
           WHEN t.id IS NULL   THEN 'no ticker'
           WHEN NOT t.active   THEN 'inactive ticker'
           ELSE 'no bar on latest date'
       END                                                      AS reason,
       (SELECT max(o.date) FROM public.ohlcv AS o WHERE o.ticker_id = t.id) AS last_bar_date
  FROM public.watchlists AS w
  LEFT JOIN public.tickers AS t ON t.symbol = w.symbol
 CROSS JOIN latest
 WHERE w.active
   AND NOT EXISTS (SELECT 1 FROM public.ohlcv AS o WHERE o.ticker_id = t.id AND o.date = latest.day)
 GROUP BY w.symbol, t.id, t.active
 ORDER BY reason, w.symbol;

-- The flat-file ledger.  Look for: last_trading_date = max_date under "coverage"; rows_rejected
-- (malformed lines) near 0; rows_unknown are symbols not in tickers (new listings before the next
-- ticker refresh).
\echo
\echo '== ingest_files ledger summary =='
SELECT count(*)                                   AS files,
       min(trading_date)                          AS first_trading_date,
       max(trading_date)                          AS last_trading_date,
       coalesce(sum(rows_read), 0)                AS rows_read,
       coalesce(sum(rows_loaded), 0)              AS rows_loaded,
       coalesce(sum(rows_rejected), 0)            AS rows_rejected,
       coalesce(sum(rows_unknown), 0)             AS rows_unknown,
       count(*) FILTER (WHERE rows_rejected > 0)  AS files_with_rejects,
       max(loaded_at)                             AS last_loaded_at
  FROM public.ingest_files;

\echo
\echo '== latest loads (10 most recent files) =='
SELECT trading_date, key, rows_read, rows_loaded, rows_rejected, rows_unknown, loaded_at
  FROM public.ingest_files
 ORDER BY loaded_at DESC, trading_date DESC
 LIMIT 10;
