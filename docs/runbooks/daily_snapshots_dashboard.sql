-- Daily snapshots dashboard: A2 (technical indicators, price metrics) coverage and integrity of
-- public.daily_snapshots over the last DAYS_BACK dates, and one symbol's payloads.
--
--   psql -X -v ON_ERROR_STOP=1 [-v DAYS_BACK=10] [-v SYMBOL=AAPL] [-v NOW="$KAPMAN_NOW"] -f docs/runbooks/daily_snapshots_dashboard.sql
--   docker exec -i kapman-db psql -U kapman -d kapman -v ON_ERROR_STOP=1 -v DAYS_BACK=10 < docs/runbooks/daily_snapshots_dashboard.sql
--
-- DAYS_BACK (default 10): the number of dates shown, counted back from the latest date that has an
--   OHLCV bar or a snapshot row; the integrity checks cover the same dates.
-- SYMBOL (default AAPL): whose values and payloads are shown at the end.  Symbols are
--   case-sensitive (AAp is a preferred, AAP another company): the exact symbol when it is a
--   ticker, else its upper-case form (so SYMBOL=msft shows MSFT).
-- NOW: KapMan's clock (a date is its 16:00 New York close, or a timestamp; -v NOW="$KAPMAN_NOW"):
--   the end of the retention window the verdict covers (as scripts.status), and an empty
--   database's window end.  Default: the warehouse's clock, public.kapman_now() (a sandbox
--   database's recorded clock, else now()).
-- daily_snapshots.time is the trading date at 16:00 America/New_York (stored in UTC), so the date
-- of a row is (time AT TIME ZONE 'America/New_York')::date throughout.
-- Read-only: it runs on a replica or with default_transaction_read_only=on.

\set QUIET on
\if :{?DAYS_BACK} \else \set DAYS_BACK 10 \endif
\if :{?SYMBOL} \else \set SYMBOL AAPL \endif
\pset null '(null)'
\if :{?NOW} \else \set NOW '' \endif
-- A bare date is that day's 16:00 close in New York, as KAPMAN_NOW reads it (not its midnight).
SELECT coalesce((substring(:'NOW' FROM '^\s*(\d{4}-\d{2}-\d{2})\s*$')::date + time '16:00')
                    AT TIME ZONE 'America/New_York',
                nullif(:'NOW', '')::timestamptz, public.kapman_now())                           AS "NOW"
\gset
SELECT (:'NOW'::timestamptz AT TIME ZONE 'America/New_York')::date AS "NOW_DATE"
\gset
-- The window: the last DAYS_BACK dates with a bar or a snapshot row (today when there is none).
-- window_from / window_to bound the snapshot times of those dates (New York midnights).
WITH anchor AS (
    SELECT greatest((SELECT max(date) FROM public.ohlcv),
                    (SELECT (max(time) AT TIME ZONE 'America/New_York')::date FROM public.daily_snapshots)
           ) AS end_date
), candidates AS (
    SELECT DISTINCT o.date
      FROM public.ohlcv AS o, anchor
     WHERE o.date > anchor.end_date - (2 * :'DAYS_BACK'::int + 10)
    UNION
    SELECT DISTINCT (s.time AT TIME ZONE 'America/New_York')::date
      FROM public.daily_snapshots AS s, anchor
     WHERE s.time >= (anchor.end_date - (2 * :'DAYS_BACK'::int + 10))::timestamp AT TIME ZONE 'America/New_York'
), last_dates AS (
    SELECT date FROM candidates ORDER BY date DESC LIMIT :'DAYS_BACK'::int
), bounds AS (
    SELECT coalesce(min(date), :'NOW_DATE'::date) AS window_start,
           coalesce(max(date), :'NOW_DATE'::date) AS window_end
      FROM last_dates
)
SELECT window_start,
       window_end,
       window_start::timestamp AT TIME ZONE 'America/New_York'       AS window_from,
       (window_end + 1)::timestamp AT TIME ZONE 'America/New_York'   AS window_to
  FROM bounds
\gset
SELECT coalesce((SELECT symbol FROM public.tickers WHERE symbol = :'SYMBOL'), upper(:'SYMBOL')) AS ticker_symbol
\gset
\set QUIET off
\echo 'Daily snapshots dashboard:' DAYS_BACK=:DAYS_BACK SYMBOL=:SYMBOL 'dates' :window_start 'to' :window_end

-- One line, as scripts.status's A2 area: OK when every date with bars of the retention window
-- ending NOW has one A2 row per bar, from the first date A2 was computed for (older dates are a
-- backfill, not a gap; A2 on the day before the window means every date of it), or from the window's first date with bars once the indicator history was
-- asked for (an A2 run with --history in ingest_runs); WARN names the first date short of that
-- and the command.
\echo
\echo '== verdict =='
WITH retention AS (
    SELECT (:'NOW_DATE'::date - coalesce((SELECT drop_after FROM public.hypertable_lifecycle
                                          WHERE hypertable_name = 'ohlcv'), interval '730 days'))::date AS start
), bars AS (
    SELECT date, count(*) AS n FROM public.ohlcv
     WHERE date BETWEEN (SELECT start FROM retention) AND :'NOW_DATE'::date GROUP BY date
), a2 AS (         -- from the close of the day before the window, as status reads A2 (retention
                    -- drops whole chunks): A2 kept there began before the window, whose dates all owe it
    SELECT (time AT TIME ZONE 'America/New_York')::date AS date, count(*) AS n
      FROM public.daily_snapshots
     WHERE time >= ((SELECT start FROM retention) + time '16:00') AT TIME ZONE 'America/New_York' - interval '1 day'
       AND technical_indicators_json IS NOT NULL
     GROUP BY 1
), short AS (
    SELECT min(b.date) FILTER (WHERE a2.n IS NULL)  AS first_missing,
           min(b.date) FILTER (WHERE a2.n < b.n)    AS first_partial,
           count(*) FILTER (WHERE a2.n IS NULL)     AS missing
      FROM bars AS b LEFT JOIN a2 ON a2.date = b.date
     WHERE b.date >= CASE WHEN EXISTS (SELECT 1 FROM public.ingest_runs
                                        WHERE job = 'a2' AND args->>'history' = 'true')
                          THEN (SELECT min(date) FROM bars)
                          ELSE (SELECT coalesce(min(date), 'infinity') FROM a2) END
)
SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM bars) THEN 'WARN'
            WHEN NOT EXISTS (SELECT 1 FROM a2) OR short.first_missing IS NOT NULL OR short.first_partial IS NOT NULL
                THEN 'WARN' ELSE 'OK' END                                                    AS verdict,
       CASE WHEN NOT EXISTS (SELECT 1 FROM bars) THEN 'no bars in the window: python -m scripts.ingest_ohlcv base'
            WHEN NOT EXISTS (SELECT 1 FROM a2) THEN 'no A2 in the window: python -m scripts.nightly'
            WHEN short.first_missing IS NOT NULL
                THEN short.missing || ' dates with bars and no A2 from ' || short.first_missing
                     || ': python -m scripts.nightly'
            WHEN short.first_partial IS NOT NULL
                THEN 'fewer A2 rows than bars on ' || short.first_partial
                     || ': python -m scripts.run_a2_local_ta --date ' || short.first_partial || ' --force'
            ELSE 'one A2 row per bar on every date since A2 began (retention window)' END     AS reason
  FROM short;

-- One line per date.  tickers_with_bar is what A2 should cover: expected rows_with_ta =
-- rows_with_price_metrics = tickers_with_bar ("complete").  rows_with_dealer_metrics is A3 (the
-- watchlist symbols only).  "no bars" = snapshot rows on a date without any OHLCV bar.
\echo
\echo '== A2 coverage per date (last DAYS_BACK dates) =='
WITH bars AS (
    SELECT o.date, count(*) AS tickers_with_bar
      FROM public.ohlcv AS o
     WHERE o.date BETWEEN :'window_start'::date AND :'window_end'::date
     GROUP BY o.date
), snaps AS (
    SELECT (s.time AT TIME ZONE 'America/New_York')::date AS date,
           count(*)                                       AS snapshot_rows,
           count(s.technical_indicators_json)             AS rows_with_ta,
           count(s.price_metrics_json)                    AS rows_with_price_metrics,
           count(s.dealer_metrics_json)                   AS rows_with_dealer_metrics
      FROM public.daily_snapshots AS s
     WHERE s.time >= :'window_from'::timestamptz AND s.time < :'window_to'::timestamptz
     GROUP BY 1
)
SELECT date,
       coalesce(b.tickers_with_bar, 0)          AS tickers_with_bar,
       coalesce(s.snapshot_rows, 0)             AS snapshot_rows,
       coalesce(s.rows_with_ta, 0)              AS rows_with_ta,
       coalesce(s.rows_with_price_metrics, 0)   AS rows_with_price_metrics,
       coalesce(s.rows_with_dealer_metrics, 0)  AS rows_with_dealer_metrics,
       round(100.0 * coalesce(s.rows_with_ta, 0) / nullif(b.tickers_with_bar, 0), 1) AS ta_pct,
       CASE
           WHEN b.date IS NULL                             THEN 'no bars'
           WHEN coalesce(s.rows_with_ta, 0) = 0            THEN 'no A2 rows'
           WHEN s.rows_with_ta = b.tickers_with_bar
            AND s.rows_with_price_metrics = b.tickers_with_bar THEN 'complete'
           WHEN s.rows_with_ta > b.tickers_with_bar        THEN 'more rows than bars'
           ELSE 'partial'
       END                                      AS status
  FROM bars AS b
  FULL JOIN snaps AS s USING (date)
 ORDER BY date DESC;

-- Percent of the latest A2 date's rows where a key indicator is null (not computable) or missing.
-- Expected: missing_key 0 and not_a_number 0 (every key is always present; null, never NaN);
-- null_pct small, except sma_200 and other long windows for tickers with short histories.
-- 100 % on a line means that indicator is broken (e.g. Aroon always null).
\echo
\echo '== null indicator shares (latest date with A2 rows) =='
WITH latest AS (
    SELECT (max(s.time) AT TIME ZONE 'America/New_York')::date AS date
      FROM public.daily_snapshots AS s
     WHERE s.technical_indicators_json IS NOT NULL
       AND s.time >= :'window_from'::timestamptz AND s.time < :'window_to'::timestamptz
), day_rows AS MATERIALIZED (
    SELECT s.technical_indicators_json AS ta, s.price_metrics_json AS pm
      FROM public.daily_snapshots AS s
      JOIN public.tickers AS t ON t.id = s.ticker_id
     CROSS JOIN latest
     WHERE s.time >= latest.date::timestamp AT TIME ZONE 'America/New_York'
       AND s.time <  (latest.date + 1)::timestamp AT TIME ZONE 'America/New_York'
), paths (ord, json_column, path) AS (VALUES
    (1,  'technical_indicators_json', 'momentum.rsi.rsi'),
    (2,  'technical_indicators_json', 'trend.sma.sma_50'),
    (3,  'technical_indicators_json', 'trend.sma.sma_200'),
    (4,  'technical_indicators_json', 'trend.aroon.aroon_up'),
    (5,  'technical_indicators_json', 'trend.aroon.aroon_down'),
    (6,  'technical_indicators_json', 'trend.macd.macd'),
    (7,  'technical_indicators_json', 'volatility.bbands.bollinger_pband'),
    (8,  'technical_indicators_json', 'volatility.atr.average_true_range'),
    (9,  'technical_indicators_json', 'trend.adx.adx'),
    (10, 'price_metrics_json',        'rvol'),
    (11, 'price_metrics_json',        'vsi'),
    (12, 'price_metrics_json',        'hv'),
    (13, 'price_metrics_json',        'close')
)
SELECT p.json_column,
       p.path,
       (SELECT date FROM latest)                                           AS date,
       count(x.doc)                                                        AS rows,
       count(*) FILTER (WHERE x.doc IS NOT NULL AND x.value IS NULL)       AS missing_key,
       count(*) FILTER (WHERE x.value = 'null'::jsonb)                     AS json_null,
       count(*) FILTER (WHERE jsonb_typeof(x.value) NOT IN ('number', 'null')) AS not_a_number,
       round(100.0 * count(*) FILTER (WHERE x.doc IS NOT NULL AND (x.value IS NULL OR x.value = 'null'::jsonb))
             / nullif(count(x.doc), 0), 1)                                 AS null_pct
  FROM paths AS p
  LEFT JOIN LATERAL (
        SELECT d.doc, d.doc #> string_to_array(p.path, '.') AS value
          FROM (SELECT CASE p.json_column WHEN 'technical_indicators_json' THEN r.ta ELSE r.pm END AS doc
                  FROM day_rows AS r) AS d
         WHERE d.doc IS NOT NULL
  ) AS x ON true
 GROUP BY p.ord, p.json_column, p.path
 ORDER BY p.ord;

-- Integrity of the window's rows, one line per rule.  Expected: violations 0 on every line.
--  * exactly one row per (ticker, date): several times on one New York date are duplicates;
--  * every row at 16:00 America/New_York;
--  * no row on a date where the ticker had no OHLCV bar (values carried onto a non-trading day);
--  * every ticker_id resolves in tickers.
\echo
\echo '== integrity checks over the window (expected: violations 0) =='
WITH w AS (
    SELECT s.ticker_id, s.time, (s.time AT TIME ZONE 'America/New_York')::date AS date
      FROM public.daily_snapshots AS s
     WHERE s.time >= :'window_from'::timestamptz AND s.time < :'window_to'::timestamptz
), c AS (
    SELECT (SELECT count(*) FROM (SELECT 1 FROM w GROUP BY w.ticker_id, w.date HAVING count(*) > 1) AS d)
               AS duplicate_ticker_dates,
           (SELECT count(*) FROM w WHERE (w.time AT TIME ZONE 'America/New_York')::time <> time '16:00')
               AS not_at_1600_new_york,
           (SELECT count(*) FROM w
             WHERE NOT EXISTS (SELECT 1 FROM public.ohlcv AS o
                                WHERE o.ticker_id = w.ticker_id AND o.date = w.date
                                  AND o.date BETWEEN :'window_start'::date AND :'window_end'::date))
               AS rows_without_bar,
           (SELECT count(*) FROM w WHERE NOT EXISTS (SELECT 1 FROM public.tickers AS t WHERE t.id = w.ticker_id))
               AS unresolved_ticker
)
SELECT v.rule,
       v.violations,
       CASE WHEN v.violations = 0 THEN 'ok' ELSE 'VIOLATION' END AS result
  FROM c
 CROSS JOIN LATERAL (VALUES
       ('duplicate (ticker, date) pairs',              c.duplicate_ticker_dates),
       ('rows not stamped 16:00 America/New_York',     c.not_at_1600_new_york),
       ('rows on a date without a bar for the ticker', c.rows_without_bar),
       ('rows whose ticker_id is not in tickers',      c.unresolved_ticker)
 ) AS v(rule, violations);

-- The offending rows behind the checks above, 20 at most.  Expected: 0 rows.
\echo
\echo '== offending rows (first 20, expected: 0 rows) =='
WITH w AS (
    SELECT s.ticker_id, s.time, (s.time AT TIME ZONE 'America/New_York')::date AS date,
           count(*) OVER (PARTITION BY s.ticker_id, (s.time AT TIME ZONE 'America/New_York')::date) AS rows_on_date,
           EXISTS (SELECT 1 FROM public.ohlcv AS o
                    WHERE o.ticker_id = s.ticker_id AND o.date = (s.time AT TIME ZONE 'America/New_York')::date
                      AND o.date BETWEEN :'window_start'::date AND :'window_end'::date) AS has_bar
      FROM public.daily_snapshots AS s
     WHERE s.time >= :'window_from'::timestamptz AND s.time < :'window_to'::timestamptz
)
SELECT coalesce(t.symbol, '(unresolved ' || w.ticker_id || ')') AS symbol,
       w.date,
       w.time,
       concat_ws('; ',
           CASE WHEN w.rows_on_date > 1 THEN 'duplicate date' END,
           CASE WHEN (w.time AT TIME ZONE 'America/New_York')::time <> time '16:00' THEN 'not 16:00 New York' END,
           CASE WHEN NOT w.has_bar THEN 'no bar that date' END,
           CASE WHEN t.id IS NULL THEN 'unresolved ticker' END) AS problems
  FROM w
  LEFT JOIN public.tickers AS t ON t.id = w.ticker_id
 WHERE w.rows_on_date > 1
    OR (w.time AT TIME ZONE 'America/New_York')::time <> time '16:00'
    OR NOT w.has_bar
    OR t.id IS NULL
 ORDER BY w.date DESC, symbol, w.time
 LIMIT 20;

-- SYMBOL's key values per date: a quick plausibility read (close matches the bar, RSI in 0..100,
-- Bollinger %B around 0..1, hv a decimal fraction).
\echo
\echo '== key values for' :SYMBOL 'over the window =='
SELECT (s.time AT TIME ZONE 'America/New_York')::date                   AS date,
       o.close                                                          AS ohlcv_close,
       s.price_metrics_json ->> 'close'                                 AS close,
       s.technical_indicators_json #>> '{momentum,rsi,rsi}'             AS rsi,
       s.technical_indicators_json #>> '{trend,sma,sma_50}'             AS sma_50,
       s.technical_indicators_json #>> '{trend,sma,sma_200}'            AS sma_200,
       s.technical_indicators_json #>> '{trend,aroon,aroon_up}'         AS aroon_up,
       s.technical_indicators_json #>> '{trend,macd,macd}'              AS macd,
       s.technical_indicators_json #>> '{volatility,bbands,bollinger_pband}' AS bb_pband,
       s.price_metrics_json ->> 'rvol'                                  AS rvol,
       s.price_metrics_json ->> 'hv'                                    AS hv,
       s.ta_version,
       s.dealer_metrics_json ->> 'status'                               AS dealer_status
  FROM public.daily_snapshots AS s
  JOIN public.tickers AS t ON t.id = s.ticker_id
  LEFT JOIN public.ohlcv AS o
         ON o.ticker_id = s.ticker_id AND o.date = (s.time AT TIME ZONE 'America/New_York')::date
 WHERE t.symbol = :'ticker_symbol'
   AND s.time >= :'window_from'::timestamptz AND s.time < :'window_to'::timestamptz
 ORDER BY s.time DESC;

-- SYMBOL's latest payloads in full.
\echo
\echo '== price_metrics_json for' :SYMBOL '(latest row) =='
SELECT t.symbol,
       (s.time AT TIME ZONE 'America/New_York')::date AS date,
       s.ta_computed_at,
       jsonb_pretty(s.price_metrics_json)              AS price_metrics_json
  FROM public.daily_snapshots AS s
  JOIN public.tickers AS t ON t.id = s.ticker_id
 WHERE t.symbol = :'ticker_symbol'
   AND s.price_metrics_json IS NOT NULL
 ORDER BY s.time DESC
 LIMIT 1;

\echo
\echo '== technical_indicators_json for' :SYMBOL '(latest row) =='
SELECT t.symbol,
       (s.time AT TIME ZONE 'America/New_York')::date AS date,
       s.ta_version,
       jsonb_pretty(s.technical_indicators_json)       AS technical_indicators_json
  FROM public.daily_snapshots AS s
  JOIN public.tickers AS t ON t.id = s.ticker_id
 WHERE t.symbol = :'ticker_symbol'
   AND s.technical_indicators_json IS NOT NULL
 ORDER BY s.time DESC
 LIMIT 1;
