-- OHLCV dashboard: a verdict, then coverage, calendar, gaps and sanity of public.ohlcv, and the
-- flat-file ledger.
--
--   psql -X -v ON_ERROR_STOP=1 [-v NOW="$KAPMAN_NOW"] [-v DAYS_BACK=30] [-v SYMBOL_LIMIT=25] -f docs/runbooks/ohlcv_dashboard.sql
--   docker exec -i kapman-db psql -U kapman -d kapman -v ON_ERROR_STOP=1 -v DAYS_BACK=30 -v SYMBOL_LIMIT=25 < docs/runbooks/ohlcv_dashboard.sql
--
-- NOW: KapMan's clock (KAPMAN_NOW's forms: a date is its 16:00 close in New York; pass
--   -v NOW="$KAPMAN_NOW" to replay a day).  Every age, window and due date is measured from it.
--   Default: the warehouse's clock, public.kapman_now() (a sandbox database's recorded clock,
--   else now()), the clock scripts.status reads.
-- DAYS_BACK (default 30): the window is the DAYS_BACK calendar days ending on NOW's New York date.
-- SYMBOL_LIMIT (default 25): rows shown in the per-symbol listings.
-- Trading days follow the NYSE calendar (public.nyse_closures); a day's flat file is due at 11:00 New
-- York the next calendar day, so a trading day without bars is "not due yet" until then and
-- "missing" after.
-- Read-only: it runs on a replica or with default_transaction_read_only=on.

\set QUIET on
\if :{?DAYS_BACK} \else \set DAYS_BACK 30 \endif
\if :{?SYMBOL_LIMIT} \else \set SYMBOL_LIMIT 25 \endif
\pset null '(null)'
\if :{?NOW} \else \set NOW '' \endif
-- A bare date is that day's 16:00 close in New York, as KAPMAN_NOW reads it (not its midnight).
SELECT coalesce((substring(:'NOW' FROM '^\s*(\d{4}-\d{2}-\d{2})\s*$')::date + time '16:00')
                    AT TIME ZONE 'America/New_York',
                nullif(:'NOW', '')::timestamptz, public.kapman_now())                           AS "NOW"
\gset
SELECT (:'NOW'::timestamptz AT TIME ZONE 'America/New_York')::date AS "NOW_DATE"
\gset
-- NYSE full-day closures from 2000 (public.nyse_closures: kapman/calendar.py's rules) as one
-- array, so a weekday is told apart as a session or a holiday.
SELECT '{' || coalesce(string_agg(day::text, ','), '') || '}' AS "HOLIDAYS"
  FROM public.nyse_closures(DATE '2000-01-01', make_date(extract(year FROM :'NOW_DATE'::date)::int + 1, 12, 31)) AS day
\gset
SELECT :'NOW_DATE'::date - (:'DAYS_BACK'::int - 1) AS "WINDOW_START"
\gset
\set QUIET off
\echo 'OHLCV dashboard:' DAYS_BACK=:DAYS_BACK SYMBOL_LIMIT=:SYMBOL_LIMIT NOW=:NOW

-- One line.  OK: every trading day of the window whose file is due has bars, none is a partial
-- file (under half the median of the 20 days with bars before it, as scripts.status counts them
-- from the retention window's first day), and every bar is sane; WARN: a day is missing, partial or
-- a rule is broken (the reason says which); FAIL: no bars at all.
\echo
\echo '== verdict =='
WITH per_day AS (   -- bars per day from 20 trading days before the window (and not before retention's)
    SELECT date AS day, count(*) AS n
      FROM public.ohlcv
     WHERE date >= greatest(:'WINDOW_START'::date - 40,
                            :'NOW_DATE'::date - coalesce((SELECT drop_after FROM public.hypertable_lifecycle
                                                          WHERE hypertable_name = 'ohlcv'), interval '730 days'))
     GROUP BY date
), thin AS (
    SELECT count(*) AS days, min(p.day) AS first_day, max(p.day) AS last_day
      FROM per_day AS p
     CROSS JOIN LATERAL (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY q.n) AS median
                           FROM (SELECT r.n FROM per_day AS r WHERE r.day < p.day
                                  ORDER BY r.day DESC LIMIT 20) AS q) AS m
     WHERE p.day BETWEEN :'WINDOW_START'::date AND :'NOW_DATE'::date AND p.n < 0.5 * m.median
), due AS (
    SELECT g.day::date AS day
      FROM generate_series(:'WINDOW_START'::date, :'NOW_DATE'::date, interval '1 day') AS g(day)
     WHERE extract(isodow FROM g.day) < 6 AND g.day::date <> ALL (:'HOLIDAYS'::date[])
       AND (g.day::date + 1 + time '11:00') AT TIME ZONE 'America/New_York' <= :'NOW'::timestamptz
), missing AS (
    SELECT count(*) AS days, min(day) AS first_day
      FROM due WHERE NOT EXISTS (SELECT 1 FROM public.ohlcv AS o WHERE o.date = due.day)
), insane AS (
    SELECT count(*) AS rows
      FROM public.ohlcv
     WHERE high < low OR open < low OR open > high OR close < low OR close > high
        OR least(open, high, low, close) <= 0 OR volume < 0
        OR 'NaN' IN (open, high, low, close, volume) OR 'Infinity' IN (open, high, low, close, volume)
        OR '-Infinity' IN (open, high, low, close, volume)
)
SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM public.ohlcv) THEN 'FAIL'
            WHEN missing.days > 0 OR thin.days > 0 OR insane.rows > 0 THEN 'WARN' ELSE 'OK' END  AS verdict,
       CASE WHEN NOT EXISTS (SELECT 1 FROM public.ohlcv) THEN 'no bars: python -m scripts.ingest_ohlcv base'
            WHEN missing.days > 0 THEN missing.days || ' due trading days without bars from ' || missing.first_day
                                       || ': python -m scripts.nightly'
            WHEN thin.days > 0 THEN thin.days || ' partial files (under half the bars of the days before) from '
                                    || thin.first_day || ': python -m scripts.ingest_ohlcv backfill --start '
                                    || thin.first_day || ' --end ' || thin.last_day || ' --force'
            WHEN insane.rows > 0 THEN insane.rows || ' bars break an OHLC rule (see OHLC sanity)'
            ELSE 'every due trading day since ' || :'WINDOW_START' || ' has bars; every bar is sane' END AS reason
  FROM missing, thin, insane;

-- Whole table.  Look for: files_due_since_max_date 0 (trading days after max_date whose file is due
-- by NOW); unresolved_ticker_rows 0 (bars whose ticker_id is not in tickers).
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
          FROM generate_series(max(p.max_date) + 1, :'NOW_DATE'::date, interval '1 day') AS g(day)
         WHERE extract(isodow FROM g.day) < 6 AND g.day::date <> ALL (:'HOLIDAYS'::date[])
           AND (g.day::date + 1 + time '11:00') AT TIME ZONE 'America/New_York' <= :'NOW'::timestamptz)
                                                              AS files_due_since_max_date
  FROM per_ticker AS p
  LEFT JOIN public.tickers AS t ON t.id = p.ticker_id;

-- One line per weekday of the window (and per weekend day that has rows, which it should not).
-- Look for: "ok" everywhere but "holiday" (NYSE closed) and "not due yet" (the file is final at
-- 11:00 New York the next day); "missing" is a due file not loaded; "low" is fewer than 90 % of the
-- window's median ticker count, i.e. a partial file.
\echo
\echo '== rows per day (the DAYS_BACK calendar days to NOW, NYSE calendar) =='
WITH days AS (
    SELECT g.day::date AS day
      FROM generate_series(:'WINDOW_START'::date, :'NOW_DATE'::date, interval '1 day') AS g(day)
), per_day AS (
    SELECT o.date, count(*) AS rows
      FROM public.ohlcv AS o
     WHERE o.date BETWEEN :'WINDOW_START'::date AND :'NOW_DATE'::date
     GROUP BY o.date
), typical AS (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY rows) AS median_rows FROM per_day
)
SELECT d.day                          AS date,
       to_char(d.day, 'Dy')           AS dow,
       coalesce(p.rows, 0)            AS rows,
       CASE
           WHEN extract(isodow FROM d.day) >= 6 THEN 'weekend rows (unexpected)'
           WHEN d.day = ANY (:'HOLIDAYS'::date[]) AND p.rows IS NULL THEN 'holiday'
           WHEN d.day = ANY (:'HOLIDAYS'::date[]) THEN 'holiday rows (unexpected)'
           WHEN p.rows IS NULL AND (d.day + 1 + time '11:00') AT TIME ZONE 'America/New_York'
                                   > :'NOW'::timestamptz THEN 'not due yet'
           WHEN p.rows IS NULL                  THEN 'missing'
           WHEN p.rows < 0.9 * typical.median_rows THEN 'low (< 90% of window median)'
           ELSE 'ok'
       END                            AS status
  FROM days AS d
  LEFT JOIN per_day AS p ON p.date = d.day
 CROSS JOIN typical
 WHERE extract(isodow FROM d.day) < 6 OR p.rows IS NOT NULL
 ORDER BY d.day DESC;

-- A halted ticker skipped a day the market traded (a date on which other tickers have bars)
-- between its first and last bar of the window.  A few on a real market are normal; a day missing
-- for everyone is not listed here but under "rows per day" as "missing".
\echo
\echo '== gaps: halted tickers, days skipped while the market traded (informational) =='
WITH trading_days AS (
    SELECT DISTINCT o.date FROM public.ohlcv AS o WHERE o.date BETWEEN :'WINDOW_START'::date AND :'NOW_DATE'::date
), span AS (
    SELECT o.ticker_id, min(o.date) AS first_day, max(o.date) AS last_day, count(*) AS bars
      FROM public.ohlcv AS o
     WHERE o.date BETWEEN :'WINDOW_START'::date AND :'NOW_DATE'::date
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

-- Tickers whose bars start or stop inside the window: new listings (first bar later than both the
-- window start and the table's first date) and delistings (inactive, last bar in the window).
-- Not gaps: they did not trade.
\echo
\echo '== listed or delisted in the window (informational) =='
WITH span AS (
    SELECT o.ticker_id, min(o.date) AS first_bar, max(o.date) AS last_bar
      FROM public.ohlcv AS o
     GROUP BY o.ticker_id
), firsts AS (
    SELECT greatest(:'WINDOW_START'::date, min(date)) AS since FROM public.ohlcv
)
SELECT t.symbol,
       CASE WHEN s.first_bar > firsts.since THEN 'listed' ELSE 'delisted' END AS event,
       s.first_bar,
       s.last_bar
  FROM span AS s
  JOIN public.tickers AS t ON t.id = s.ticker_id
 CROSS JOIN firsts
 WHERE s.first_bar > firsts.since OR (NOT t.active AND s.last_bar >= :'WINDOW_START'::date)
 ORDER BY event, t.symbol
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
    SELECT :'WINDOW_START'::date AS start_date
)
SELECT count(*) FILTER (WHERE o.volume = 0)                                  AS zero_volume_rows_all_history,
       count(*) FILTER (WHERE o.volume = 0 AND o.date >= win.start_date)     AS zero_volume_rows_in_window,
       count(DISTINCT o.ticker_id) FILTER (WHERE o.volume = 0 AND o.date >= win.start_date)
                                                                            AS tickers_in_window
  FROM public.ohlcv AS o, win;

WITH win AS (
    SELECT :'WINDOW_START'::date AS start_date
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
    SELECT :'NOW_DATE'::date AS end_date, :'WINDOW_START'::date AS start_date
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
    SELECT :'NOW_DATE'::date AS end_date, :'WINDOW_START'::date AS start_date
)
SELECT t.symbol,
       t.type,
       count(*)                          AS bars,
       round(avg(o.volume)::numeric, 0)  AS avg_volume,
       round(avg(o.close)::numeric, 2)   AS avg_close,
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
-- Indices (I:SPX) are counted apart: they get options and A3, never bars (the stock flat files
-- have none).
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
       count(*) FILTER (WHERE NOT m.has_bar AND m.symbol NOT LIKE 'I:%') AS without_bar,
       count(*) FILTER (WHERE m.symbol LIKE 'I:%')      AS indices
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
   AND w.symbol NOT LIKE 'I:%'
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
