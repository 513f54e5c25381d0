-- Dealer metrics dashboard: A3 results in public.daily_snapshots.dealer_metrics_json.
--
--   psql -X -v ON_ERROR_STOP=1 [-v SNAPSHOT_N=1] [-v DAYS_BACK=10] [-v PAYLOADS=on] [-v NOW="$KAPMAN_NOW"] -f docs/runbooks/dealer_metrics_dashboard.sql
--   docker exec -i kapman-db psql -U kapman -d kapman -v ON_ERROR_STOP=1 -v SNAPSHOT_N=1 < docs/runbooks/dealer_metrics_dashboard.sql
--
-- SNAPSHOT_N (default 1): which date the per-symbol sections show: 1 = the latest date with dealer
--   metrics, 2 = the one before, and so on.  Past the oldest date it prints "none" and the
--   per-symbol sections are empty.
-- DAYS_BACK (default 10): dates listed in the status distribution.
-- PAYLOADS (default off): on prints three whole dealer_metrics_json documents of the selected date;
--   off prints one summary line per sample instead.
-- NOW: KapMan's clock (a date is its 16:00 New York close, or a timestamp; -v NOW="$KAPMAN_NOW"):
--   the retention window whose snapshot dates the verdict checks ends there; without it, the
--   database's recorded clock (a sandbox's frozen one), else now().
-- The date of a row is its New York trading date, (time AT TIME ZONE 'America/New_York')::date.
-- Payload fields are documented in docs/a3_dealer_metrics.md.
-- Read-only: it runs on a replica or with default_transaction_read_only=on.

\set QUIET on
\if :{?SNAPSHOT_N} \else \set SNAPSHOT_N 1 \endif
\if :{?DAYS_BACK} \else \set DAYS_BACK 10 \endif
\if :{?PAYLOADS} \else \set PAYLOADS off \endif
\if :{?NOW} \else \set NOW '' \endif
\pset null '(null)'
SELECT coalesce((substring(:'NOW' FROM '^\s*(\d{4}-\d{2}-\d{2})\s*$')::date + time '16:00')
                    AT TIME ZONE 'America/New_York',
                nullif(:'NOW', '')::timestamptz, public.kapman_now())                           AS "NOW"
\gset
-- NYSE full-day closures from 2000 (public.nyse_closures: kapman/calendar.py's rules) as one
-- array, so a weekday is told apart as a session or a holiday.
SELECT '{' || coalesce(string_agg(day::text, ','), '') || '}' AS "HOLIDAYS"
  FROM public.nyse_closures(DATE '2000-01-01', make_date(extract(year FROM (:'NOW'::timestamptz AT TIME ZONE 'America/New_York')::date)::int + 1,
                                                         12, 31)) AS day
\gset
-- The last session closed by NOW: the only one whose chains the stale check below counts for a
-- rewrite under the same time (kapman/ops/inventory.py, rewrites_checked).
SELECT max(g.day)::date AS "LAST_SESSION"
  FROM generate_series((:'NOW'::timestamptz AT TIME ZONE 'America/New_York')::date - 14,
                       (:'NOW'::timestamptz AT TIME ZONE 'America/New_York')::date, interval '1 day') AS g(day)
 WHERE extract(isodow FROM g.day) < 6 AND g.day::date <> ALL (:'HOLIDAYS'::date[])
   AND (g.day::date + CASE WHEN EXISTS (SELECT 1 FROM public.nyse_early_closes(g.day::date, g.day::date))
                           THEN time '13:00' ELSE time '16:00' END) AT TIME ZONE 'America/New_York'
       <= :'NOW'::timestamptz
\gset
-- The dates with dealer metrics, latest first, found by walking back one New York date at a time
-- along the time index (a handful of index probes instead of a scan of every snapshot row):
-- selected_date is the SNAPSHOT_N-th of them, selected_from/_to bound its snapshot times (an empty
-- range when there is no such date), history_from is where the DAYS_BACK-th date starts.
WITH RECURSIVE dealer_dates (date, n) AS (
    SELECT (max(s.time) AT TIME ZONE 'America/New_York')::date, 1
      FROM public.daily_snapshots AS s
     WHERE s.dealer_metrics_json IS NOT NULL
    UNION ALL
    SELECT (SELECT (max(s.time) AT TIME ZONE 'America/New_York')::date
              FROM public.daily_snapshots AS s
             WHERE s.dealer_metrics_json IS NOT NULL
               AND s.time < d.date::timestamp AT TIME ZONE 'America/New_York'),
           d.n + 1
      FROM dealer_dates AS d
     WHERE d.date IS NOT NULL
       AND d.n < greatest(:'SNAPSHOT_N'::int, :'DAYS_BACK'::int)
), found AS (
    SELECT date, n FROM dealer_dates WHERE date IS NOT NULL
), nth AS (
    SELECT max(date) AS date FROM found WHERE n = :'SNAPSHOT_N'::int
)
SELECT coalesce(nth.date::text, 'none')                                                     AS selected_date,
       coalesce(nth.date, date '1970-01-01')::timestamp AT TIME ZONE 'America/New_York'          AS selected_from,
       coalesce(nth.date + 1, date '1970-01-01')::timestamp AT TIME ZONE 'America/New_York'  AS selected_to,
       coalesce((SELECT min(date) FROM found WHERE n <= :'DAYS_BACK'::int), date 'infinity')::timestamp
           AT TIME ZONE 'America/New_York'                                                  AS history_from
  FROM nth
\gset
\set QUIET off
\echo 'Dealer metrics dashboard:' SNAPSHOT_N=:SNAPSHOT_N DAYS_BACK=:DAYS_BACK
\echo 'Selected date (SNAPSHOT_N):' :selected_date

-- One line.  OK: every snapshot date of the retention window ending NOW has A3 (as scripts.status's
-- A3 area counts them), every active watchlist symbol has a row on the selected date, computed from
-- the symbol's latest chain of that date as it is stored now (not rewritten since under its time);
-- WARN names what is missing and the command; no snapshots yet is a WARN too.
\echo
\echo '== verdict =='
WITH retention AS (
    SELECT ((:'NOW'::timestamptz AT TIME ZONE 'America/New_York')::date
            - coalesce((SELECT drop_after FROM public.hypertable_lifecycle WHERE hypertable_name = 'ohlcv'),
                       interval '730 days'))::date AS start
), snapshot_days AS (   -- DISTINCT on the leading key column: a skip scan of the time index; trading
                        -- days only (A3 refuses a weekend's or a holiday's chains, a run by hand)
    SELECT DISTINCT (t.time AT TIME ZONE 'America/New_York')::date AS day
      FROM (SELECT DISTINCT time FROM public.options_chains
             WHERE time >= ((SELECT start FROM retention) + time '16:00') AT TIME ZONE 'America/New_York'
                           - interval '1 day') AS t
     WHERE extract(isodow FROM t.time AT TIME ZONE 'America/New_York') < 6
       AND (t.time AT TIME ZONE 'America/New_York')::date <> ALL (:'HOLIDAYS'::date[])
), newest AS (
    SELECT max(day) AS day FROM snapshot_days
), unmet AS (
    SELECT count(*) AS days, min(s.day) AS first
      FROM snapshot_days AS s
     WHERE NOT EXISTS (SELECT 1 FROM public.daily_snapshots AS d
                        WHERE d.dealer_metrics_json IS NOT NULL
                          AND d.time >= s.day::timestamp AT TIME ZONE 'America/New_York'
                          AND d.time < (s.day + 1)::timestamp AT TIME ZONE 'America/New_York')
), computed AS (
    SELECT (max(time) AT TIME ZONE 'America/New_York')::date AS day
      FROM public.daily_snapshots WHERE dealer_metrics_json IS NOT NULL
), uncovered AS (   -- the watchlist scope of the selected date: symbols on a list by then, as status
    SELECT count(*) AS symbols FROM (
        SELECT t.symbol
          FROM public.watchlists AS w
          JOIN public.tickers AS t ON t.symbol = w.symbol AND t.active
         WHERE w.active AND :'selected_date' <> 'none'
           AND NOT EXISTS (SELECT 1 FROM public.daily_snapshots AS d
                            WHERE d.ticker_id = t.id AND d.dealer_metrics_json IS NOT NULL
                              AND d.time >= :'selected_from'::timestamptz AND d.time < :'selected_to'::timestamptz)
         GROUP BY t.symbol
        HAVING min(w.effective_date) <= (:'selected_from'::timestamptz AT TIME ZONE 'America/New_York')::date) AS u
), stale AS (       -- A3 not current, as status's a3 area (kapman/ops/inventory.py, A3_CURRENT): computed
                    -- from another chain than the symbol's latest of the selected date (one fetched after
                    -- A3 ran, or none left), or from a chain rewritten since under the same time (an options
                    -- replay: its contract count, counts.total, or its newest updated_at, which the
                    -- metrics record as snapshot_written_at, moved; counted on LAST_SESSION only)
    SELECT count(*) AS symbols
      FROM public.daily_snapshots AS d
      LEFT JOIN LATERAL (SELECT oc.time FROM public.options_chains AS oc
                          WHERE oc.ticker_id = d.ticker_id
                            AND oc.time >= :'selected_from'::timestamptz AND oc.time < :'selected_to'::timestamptz
                          ORDER BY oc.ticker_id, oc.time DESC LIMIT 1) AS l ON true
      LEFT JOIN LATERAL (SELECT count(*) AS n, max(oc.updated_at) AS written FROM public.options_chains AS oc
                          WHERE :'selected_date' = :'LAST_SESSION'
                            AND oc.ticker_id = d.ticker_id AND oc.time = l.time AND oc.time = d.dealer_snapshot_time
                            AND oc.time >= :'selected_from'::timestamptz AND oc.time < :'selected_to'::timestamptz) AS c
             ON true
     WHERE d.dealer_metrics_json IS NOT NULL
       AND d.time >= :'selected_from'::timestamptz AND d.time < :'selected_to'::timestamptz
       AND NOT coalesce(d.dealer_snapshot_time IS NOT DISTINCT FROM l.time
                        AND (l.time IS NULL OR :'selected_date' <> :'LAST_SESSION'
                             OR (c.n = (d.dealer_metrics_json #>> '{counts,total}')::bigint
                                 AND c.written = (d.dealer_metrics_json ->> 'snapshot_written_at')::timestamptz)),
                        false)
       AND d.ticker_id IN (SELECT t.id FROM public.watchlists AS w
                             JOIN public.tickers AS t ON t.symbol = w.symbol AND t.active
                            WHERE w.active GROUP BY t.id
                           HAVING min(w.effective_date)
                                  <= (:'selected_from'::timestamptz AT TIME ZONE 'America/New_York')::date)
)
SELECT CASE WHEN newest.day IS NULL OR computed.day IS NULL OR computed.day < newest.day OR unmet.days > 0
                 OR stale.symbols > 0 OR uncovered.symbols > 0
            THEN 'WARN' ELSE 'OK' END                                                       AS verdict,
       CASE WHEN newest.day IS NULL THEN 'no option snapshots to compute from'
            WHEN computed.day IS NULL OR computed.day < newest.day
                THEN 'the snapshot of ' || newest.day || ' has no dealer metrics: python -m scripts.nightly'
            WHEN unmet.days > 0
                THEN unmet.days || ' snapshot dates without dealer metrics from ' || unmet.first
                     || ': python -m scripts.nightly'
            WHEN stale.symbols > 0
                THEN stale.symbols || ' symbols on ' || :'selected_date' || ' computed before their chain of the day: '
                     || 'python -m scripts.run_a3_dealer_metrics --date ' || :'selected_date'
            WHEN uncovered.symbols > 0
                THEN uncovered.symbols || ' active watchlist symbols without dealer metrics on ' || :'selected_date'
                     || ': python -m scripts.run_a3_dealer_metrics --date ' || :'selected_date'
            ELSE 'dealer metrics for the newest snapshot (' || newest.day || ') and every watchlist symbol' END
                                                                                            AS reason
  FROM newest, computed, unmet, stale, uncovered;

-- One line per date, latest first.  Look for: FULL for liquid names; LIMITED for thin chains;
-- INVALID mostly no_snapshot (options not ingested that day).  other counts statuses that are
-- not FULL/LIMITED/INVALID: expected 0.
\echo
\echo '== status distribution per date (last DAYS_BACK dates with dealer metrics) =='
WITH per_date AS (
    SELECT (s.time AT TIME ZONE 'America/New_York')::date                              AS date,
           count(*)                                                                    AS rows,
           count(*) FILTER (WHERE s.dealer_metrics_json ->> 'status' = 'FULL')         AS "FULL",
           count(*) FILTER (WHERE s.dealer_metrics_json ->> 'status' = 'LIMITED')      AS "LIMITED",
           count(*) FILTER (WHERE s.dealer_metrics_json ->> 'status' = 'INVALID')      AS "INVALID",
           count(*) FILTER (WHERE coalesce(s.dealer_metrics_json ->> 'status', '')
                                  NOT IN ('FULL', 'LIMITED', 'INVALID'))               AS other,
           max(s.dealer_computed_at)                                                   AS last_computed_at,
           string_agg(DISTINCT s.dealer_version, ', ')                                 AS dealer_versions
      FROM public.daily_snapshots AS s
      JOIN public.tickers AS t ON t.id = s.ticker_id
     WHERE s.dealer_metrics_json IS NOT NULL
       AND s.time >= :'history_from'::timestamptz
     GROUP BY 1
)
SELECT date, rows, "FULL", "LIMITED", "INVALID", other,
       round(100.0 * "FULL" / nullif(rows, 0), 1) AS full_pct,
       last_computed_at,
       dealer_versions
  FROM per_date
 ORDER BY date DESC
 LIMIT :'DAYS_BACK'::int;

-- The selected date, one line per symbol.  gex_* in USD per 1 % move; position from
-- gex_net / gex_gross; walls, flip and max pain are strikes/levels.  Look for: walls bracketing
-- spot, gamma_flip near spot or (null) with a reason, INVALID lines with all metrics (null).
\echo
\echo '== walls and gamma flip on the selected date (SNAPSHOT_N) =='
SELECT t.symbol,
       d.dealer_metrics_json ->> 'status'                     AS status,
       round((d.dealer_metrics_json ->> 'spot')::numeric, 2)            AS spot,
       round((d.dealer_metrics_json ->> 'gex_net')::numeric)         AS gex_net,
       round((d.dealer_metrics_json ->> 'gex_gross')::numeric)       AS gex_gross,
       d.dealer_metrics_json ->> 'position'                   AS position,
       round((d.dealer_metrics_json ->> 'gamma_flip')::numeric, 2)      AS gamma_flip,
       round((d.dealer_metrics_json ->> 'call_wall')::numeric, 2)       AS call_wall,
       round((d.dealer_metrics_json ->> 'put_wall')::numeric, 2)        AS put_wall,
       round((d.dealer_metrics_json ->> 'max_pain')::numeric, 2)        AS max_pain,
       (d.dealer_metrics_json #>> '{counts,eligible}')::int   AS eligible,
       d.dealer_snapshot_time
  FROM public.daily_snapshots AS d
  JOIN public.tickers AS t ON t.id = d.ticker_id
 WHERE d.time >= :'selected_from'::timestamptz AND d.time < :'selected_to'::timestamptz
   AND d.dealer_metrics_json IS NOT NULL
 ORDER BY t.symbol;

-- Why symbols are not FULL on the selected date: status_reason joins several reasons with "; ",
-- counted here one by one.  Expected: INVALID mostly no_snapshot; no_spot or
-- no_eligible_contracts on liquid names deserve a look.
\echo
\echo '== INVALID and LIMITED reasons on the selected date =='
SELECT d.dealer_metrics_json ->> 'status'                            AS status,
       r.reason,
       count(*)                                                      AS symbols,
       string_agg(t.symbol, ', ' ORDER BY t.symbol)                  AS examples
  FROM public.daily_snapshots AS d
  JOIN public.tickers AS t ON t.id = d.ticker_id
 CROSS JOIN LATERAL regexp_split_to_table(coalesce(d.dealer_metrics_json ->> 'status_reason', '(no reason)'), ';\s*')
       AS r(reason)
 WHERE d.time >= :'selected_from'::timestamptz AND d.time < :'selected_to'::timestamptz
   AND d.dealer_metrics_json ->> 'status' IS DISTINCT FROM 'FULL'
   AND d.dealer_metrics_json IS NOT NULL
 GROUP BY 1, 2
 ORDER BY status, symbols DESC, reason;

-- Active watchlist symbols (with an active ticker) on a list by the selected date that have no
-- dealer metrics on it.  Expected: 0 rows; A3 writes a row, INVALID at worst, for every watchlist
-- symbol.
\echo
\echo '== active watchlist symbols without dealer metrics on the selected date (expected: 0 rows) =='
SELECT t.symbol
  FROM public.watchlists AS w
  JOIN public.tickers AS t ON t.symbol = w.symbol AND t.active
 WHERE w.active
   AND :'selected_date' <> 'none'
   AND NOT EXISTS (SELECT 1
                     FROM public.daily_snapshots AS d
                    WHERE d.ticker_id = t.id
                      AND d.time >= :'selected_from'::timestamptz AND d.time < :'selected_to'::timestamptz
                      AND d.dealer_metrics_json IS NOT NULL)
 GROUP BY t.symbol
HAVING min(w.effective_date) <= (:'selected_from'::timestamptz AT TIME ZONE 'America/New_York')::date
 ORDER BY t.symbol;

-- Three samples of the selected date, FULL first: a summary line each, or (PAYLOADS=on) the whole
-- documents.
\echo
\echo '== sample payloads on the selected date (LIMIT 3; -v PAYLOADS=on for the documents) =='
\if :PAYLOADS
SELECT t.symbol,
       d.dealer_metrics_json ->> 'status'     AS status,
       jsonb_pretty(d.dealer_metrics_json)    AS dealer_metrics_json
\else
SELECT t.symbol,
       d.dealer_metrics_json ->> 'status'                                    AS status,
       d.dealer_metrics_json ->> 'status_reason'                             AS status_reason,
       round((d.dealer_metrics_json ->> 'gex_ratio')::numeric, 3)            AS gex_ratio,
       round((d.dealer_metrics_json ->> 'put_call_oi_ratio')::numeric, 2)    AS put_call_oi_ratio,
       round((d.dealer_metrics_json ->> 'atm_iv')::numeric, 3)               AS atm_iv,
       (d.dealer_metrics_json #>> '{counts,total}')::int                     AS contracts,
       (d.dealer_metrics_json #>> '{counts,expirations}')::int               AS expirations,
       d.dealer_metrics_json ->> 'spot_source'                               AS spot_source
\endif
  FROM public.daily_snapshots AS d
  JOIN public.tickers AS t ON t.id = d.ticker_id
 WHERE d.time >= :'selected_from'::timestamptz AND d.time < :'selected_to'::timestamptz
   AND d.dealer_metrics_json IS NOT NULL
 ORDER BY d.dealer_metrics_json ->> 'status' = 'FULL' DESC, t.symbol
 LIMIT 3;
