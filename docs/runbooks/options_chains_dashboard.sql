-- Options chains dashboard: the latest snapshot of public.options_chains, its greeks, its coverage of
-- the active watchlists, the recent snapshot history and the options ingestion runs.
--
--   psql -X -v ON_ERROR_STOP=1 [-v NOW="$KAPMAN_NOW"] [-v DAYS_BACK=14] -f docs/runbooks/options_chains_dashboard.sql
--   docker exec -i kapman-db psql -U kapman -d kapman -v ON_ERROR_STOP=1 < docs/runbooks/options_chains_dashboard.sql
--
-- NOW: KapMan's clock (KAPMAN_NOW's forms: a date is its 16:00 close in New York; pass
--   -v NOW="$KAPMAN_NOW" to replay a day).  Every age, window and due date is measured from it.
--   Default: the warehouse's clock, public.kapman_now() (a sandbox database's recorded clock,
--   else now()), the clock scripts.status reads.
-- DAYS_BACK (default 14): days of snapshot history listed, counted back from the latest snapshot.
-- Every ingestion run writes all of its rows with one snapshot time, so "latest snapshot" means
-- the rows with time = max(time).  Only the latest snapshot and the history window are scanned.
-- Read-only: it runs on a replica or with default_transaction_read_only=on.

\set QUIET on
\if :{?DAYS_BACK} \else \set DAYS_BACK 14 \endif
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
-- The NYSE's 13:00 early closes (public.nyse_early_closes: kapman/calendar.py's rules).  A
-- session's snapshot window opens at its real close.
SELECT '{' || coalesce(string_agg(day::text, ','), '') || '}' AS "EARLY_CLOSES"
  FROM public.nyse_early_closes(DATE '2000-01-01', make_date(extract(year FROM :'NOW_DATE'::date)::int + 1, 12, 31)) AS day
\gset
\set QUIET off
\echo 'Options chains dashboard:' DAYS_BACK=:DAYS_BACK NOW=:NOW

-- One line.  A session's snapshot can only be taken from its close (16:00, 13:00 on an early
-- close) to midnight New York:
-- OK when every one of the last 10 closed sessions (since the first snapshot; scripts.status's
-- LOST_RECENT_SESSIONS, older losses are history) has one;
-- WARN when today's is still to take (pending) or one was never taken (lost for good); FAIL: none.
\echo
\echo '== verdict =='
WITH sessions AS (  -- 30 calendar days hold 10 sessions whatever the holidays
    SELECT day FROM (
        SELECT g.day::date AS day
          FROM generate_series(greatest(:'NOW_DATE'::date - 30,
                                        (SELECT (min(time) AT TIME ZONE 'America/New_York')::date
                                           FROM public.options_chains)),
                               :'NOW_DATE'::date, interval '1 day') AS g(day)
         WHERE extract(isodow FROM g.day) < 6 AND g.day::date <> ALL (:'HOLIDAYS'::date[])
           AND (g.day::date + CASE WHEN g.day::date = ANY (:'EARLY_CLOSES'::date[]) THEN time '13:00'
                                   ELSE time '16:00' END) AT TIME ZONE 'America/New_York' <= :'NOW'::timestamptz
         ORDER BY 1 DESC LIMIT 10) AS recent
), taken AS (
    SELECT DISTINCT (time AT TIME ZONE 'America/New_York')::date AS day
      FROM public.options_chains
     WHERE time >= (:'NOW_DATE'::date - 30)::timestamp AT TIME ZONE 'America/New_York'
), scope AS (       -- the watchlist scope: active symbols with an active ticker, by the day they joined
    SELECT t.id, t.symbol, min(w.effective_date) AS since
      FROM public.watchlists AS w JOIN public.tickers AS t ON t.symbol = w.symbol
     WHERE w.active AND t.active GROUP BY t.id, t.symbol
), window_of AS (   -- each session's snapshot window: from its close to midnight New York
    SELECT s.day,
           (s.day + CASE WHEN s.day = ANY (:'EARLY_CLOSES'::date[]) THEN time '13:00' ELSE time '16:00' END)
               AT TIME ZONE 'America/New_York'                          AS opens,
           (s.day + 1)::timestamp AT TIME ZONE 'America/New_York'      AS closes
      FROM sessions AS s
), short AS (       -- sessions with a snapshot that lacks symbols: no chain in the window, and no
                    -- options run of the session found the provider listing none for them ('empty')
    SELECT s.day, count(*) AS missing
      FROM window_of AS s JOIN scope AS sc ON sc.since <= s.day
     WHERE s.day IN (SELECT day FROM taken)
       AND NOT EXISTS (SELECT 1 FROM public.options_chains AS oc
                        WHERE oc.ticker_id = sc.id AND oc.time >= s.opens AND oc.time < s.closes)
       AND NOT EXISTS (SELECT 1 FROM public.ingest_runs AS r
                        WHERE r.job = 'options' AND r.snapshot_time >= s.opens AND r.snapshot_time < s.closes
                          AND jsonb_typeof(r.summary -> 'outcomes') = 'object'
                          AND r.summary -> 'outcomes' -> sc.symbol ->> 'status' = 'empty')
     GROUP BY s.day
), missing AS (
    SELECT string_agg(day::text, ', ' ORDER BY day) FILTER (WHERE day < :'NOW_DATE'::date) AS lost,
           bool_or(day = :'NOW_DATE'::date)                                              AS pending,
           (SELECT string_agg(day || ' (' || short.missing || ')', ', ' ORDER BY day)
              FROM short WHERE day < :'NOW_DATE'::date)                                  AS lost_symbols,
           (SELECT missing FROM short WHERE day = :'NOW_DATE'::date)                     AS pending_symbols
      FROM sessions WHERE day NOT IN (SELECT day FROM taken)
)
SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM public.options_chains) THEN 'FAIL'
            WHEN missing.lost IS NOT NULL OR missing.pending OR missing.lost_symbols IS NOT NULL
              OR missing.pending_symbols IS NOT NULL THEN 'WARN' ELSE 'OK' END AS verdict,
       CASE WHEN NOT EXISTS (SELECT 1 FROM public.options_chains)
                THEN 'no snapshots: python -m scripts.nightly after the 16:00 close'
            WHEN missing.pending THEN 'today''s session has closed without a snapshot: python -m scripts.nightly '
                                      || 'before midnight New York'
                                      || coalesce('; lost: ' || missing.lost, '')
            WHEN missing.pending_symbols IS NOT NULL
                THEN 'today''s snapshot lacks ' || missing.pending_symbols || ' watchlist symbols: '
                     || 'python -m scripts.nightly before midnight New York'
                     || coalesce('; lost: ' || missing.lost, '')
            WHEN missing.lost IS NOT NULL THEN 'lost for good (never taken): ' || missing.lost
                                               || coalesce('; symbols lost: ' || missing.lost_symbols, '')
            WHEN missing.lost_symbols IS NOT NULL THEN 'symbols lost for good: ' || missing.lost_symbols
            ELSE 'each of the last 10 closed sessions has a chain of every watchlist symbol'
       END AS reason
  FROM missing;

-- Look for: snapshot_time = the last run (age since it, by NOW); symbols close to the number of active watchlist symbols
-- (see "watchlist coverage"); calls and puts of the same order; unresolved_ticker_rows 0.
\echo
\echo '== latest snapshot =='
SELECT max(oc.time)                                   AS snapshot_time,
       date_trunc('minute', :'NOW'::timestamptz - max(oc.time)) AS age,
       count(DISTINCT t.symbol)                       AS symbols,
       count(*)                                       AS contracts,
       count(*) FILTER (WHERE oc.option_type = 'C')   AS calls,
       count(*) FILTER (WHERE oc.option_type = 'P')   AS puts,
       count(DISTINCT oc.expiration_date)             AS expirations,
       min(oc.expiration_date)                        AS first_expiration,
       max(oc.expiration_date)                        AS last_expiration,
       count(*) FILTER (WHERE t.id IS NULL)           AS unresolved_ticker_rows
  FROM public.options_chains AS oc
  LEFT JOIN public.tickers AS t ON t.id = oc.ticker_id
 WHERE oc.time = (SELECT max(time) FROM public.options_chains);

-- One line per underlying in the latest snapshot.  Look for: symbols with very few contracts or a
-- single side (calls only / puts only), and a missing underlying_price.
\echo
\echo '== contracts per symbol (latest snapshot) =='
SELECT t.symbol,
       count(*)                                      AS contracts,
       count(*) FILTER (WHERE oc.option_type = 'C')  AS calls,
       count(*) FILTER (WHERE oc.option_type = 'P')  AS puts,
       count(DISTINCT oc.expiration_date)            AS expirations,
       min(oc.expiration_date)                       AS first_expiration,
       max(oc.expiration_date)                       AS last_expiration,
       round(max(oc.underlying_price)::numeric, 2)   AS underlying_price,
       coalesce(sum(oc.open_interest), 0)            AS open_interest
  FROM public.options_chains AS oc
  JOIN public.tickers AS t ON t.id = oc.ticker_id
 WHERE oc.time = (SELECT max(time) FROM public.options_chains)
 GROUP BY t.symbol
 ORDER BY t.symbol;

-- Percent of the latest snapshot's contracts with a NULL field.  Some NULL greeks are normal
-- (deep ITM/OTM or untraded contracts); a share near 100 % means the provider sent none.
\echo
\echo '== NULL greeks and IV, percent of contracts (latest snapshot) =='
SELECT count(*)                                                                          AS contracts,
       round(100.0 * count(*) FILTER (WHERE oc.implied_volatility IS NULL) / nullif(count(*), 0), 1) AS iv_null_pct,
       round(100.0 * count(*) FILTER (WHERE oc.delta IS NULL)              / nullif(count(*), 0), 1) AS delta_null_pct,
       round(100.0 * count(*) FILTER (WHERE oc.gamma IS NULL)              / nullif(count(*), 0), 1) AS gamma_null_pct,
       round(100.0 * count(*) FILTER (WHERE oc.theta IS NULL)              / nullif(count(*), 0), 1) AS theta_null_pct,
       round(100.0 * count(*) FILTER (WHERE oc.vega IS NULL)               / nullif(count(*), 0), 1) AS vega_null_pct,
       round(100.0 * count(*) FILTER (WHERE oc.open_interest IS NULL)      / nullif(count(*), 0), 1) AS oi_null_pct,
       round(100.0 * count(*) FILTER (WHERE oc.underlying_price IS NULL)   / nullif(count(*), 0), 1) AS underlying_null_pct
  FROM public.options_chains AS oc
  JOIN public.tickers AS t ON t.id = oc.ticker_id
 WHERE oc.time = (SELECT max(time) FROM public.options_chains);

\echo
\echo '== symbols with the most NULL gamma (latest snapshot, top 10) =='
SELECT t.symbol,
       count(*)                                                                          AS contracts,
       count(*) FILTER (WHERE oc.gamma IS NULL)                                          AS gamma_null,
       round(100.0 * count(*) FILTER (WHERE oc.gamma IS NULL) / count(*), 1)             AS gamma_null_pct,
       round(100.0 * count(*) FILTER (WHERE oc.implied_volatility IS NULL) / count(*), 1) AS iv_null_pct
  FROM public.options_chains AS oc
  JOIN public.tickers AS t ON t.id = oc.ticker_id
 WHERE oc.time = (SELECT max(time) FROM public.options_chains)
 GROUP BY t.symbol
HAVING count(*) FILTER (WHERE oc.gamma IS NULL) > 0
 ORDER BY gamma_null_pct DESC, t.symbol
 LIMIT 10;

-- Expirations of the latest snapshot.  dte = calendar days from the snapshot's New York date.
-- Look for: no expiration before the snapshot date (dte < 0).
\echo
\echo '== contracts per expiration (latest snapshot) =='
SELECT oc.expiration_date,
       oc.expiration_date - (oc.time AT TIME ZONE 'America/New_York')::date AS dte,
       count(DISTINCT t.symbol)                                               AS symbols,
       count(*)                                                               AS contracts,
       count(*) FILTER (WHERE oc.option_type = 'C')                           AS calls,
       count(*) FILTER (WHERE oc.option_type = 'P')                           AS puts
  FROM public.options_chains AS oc
  JOIN public.tickers AS t ON t.id = oc.ticker_id
 WHERE oc.time = (SELECT max(time) FROM public.options_chains)
 GROUP BY oc.expiration_date, dte
 ORDER BY oc.expiration_date;

-- Distinct symbols, never rows: an active watchlist symbol counts once however many contracts it
-- has.  "(all watchlists)" counts each symbol once across lists.  Expected: with_latest_snapshot =
-- resolved (symbols without listed options excepted) and the listing below it empty.
\echo
\echo '== watchlist coverage: distinct active watchlist symbols with a snapshot =='
WITH latest AS (
    SELECT max(time) AS time FROM public.options_chains
), members AS (
    SELECT w.watchlist_id,
           w.symbol,
           t.id AS ticker_id,
           EXISTS (SELECT 1 FROM public.options_chains AS oc
                    WHERE oc.ticker_id = t.id AND oc.time = latest.time)               AS in_latest,
           EXISTS (SELECT 1 FROM public.options_chains AS oc
                    WHERE oc.ticker_id = t.id
                      AND oc.time >= latest.time - make_interval(days => :'DAYS_BACK'::int)) AS in_window
      FROM public.watchlists AS w
      LEFT JOIN public.tickers AS t ON t.symbol = w.symbol
     CROSS JOIN latest
     WHERE w.active
), scoped AS (
    SELECT m.watchlist_id AS scope, m.symbol, m.ticker_id, m.in_latest, m.in_window FROM members AS m
    UNION ALL
    SELECT DISTINCT '(all watchlists)', m.symbol, m.ticker_id, m.in_latest, m.in_window FROM members AS m
)
SELECT s.scope                                                        AS watchlist_id,
       count(DISTINCT s.symbol)                                       AS active_symbols,
       count(DISTINCT s.symbol) FILTER (WHERE s.ticker_id IS NOT NULL) AS resolved,
       count(DISTINCT s.symbol) FILTER (WHERE s.in_latest)            AS with_latest_snapshot,
       count(DISTINCT s.symbol) FILTER (WHERE s.in_window)            AS with_snapshot_in_window,
       count(DISTINCT s.symbol) FILTER (WHERE NOT s.in_latest)        AS missing_from_latest
  FROM scoped AS s
 GROUP BY s.scope
 ORDER BY s.scope = '(all watchlists)', s.scope;

WITH latest AS (
    SELECT max(time) AS time FROM public.options_chains
)
SELECT w.symbol,
       string_agg(w.watchlist_id, ', ' ORDER BY w.watchlist_id)                         AS watchlists,
       CASE WHEN t.id IS NULL THEN 'no ticker' ELSE 'not in latest snapshot' END          AS reason,
       (SELECT max(oc.time) FROM public.options_chains AS oc WHERE oc.ticker_id = t.id)   AS last_snapshot_time
  FROM public.watchlists AS w
  LEFT JOIN public.tickers AS t ON t.symbol = w.symbol
 CROSS JOIN latest
 WHERE w.active
   AND NOT EXISTS (SELECT 1 FROM public.options_chains AS oc
                    WHERE oc.ticker_id = t.id AND oc.time = latest.time)
 GROUP BY w.symbol, t.id
 ORDER BY reason, w.symbol;

-- One line per snapshot time in the last DAYS_BACK days.  Look for: one snapshot per run, steady
-- symbol and contract counts (a dip is a partial run, see the runs below), unresolved_tickers 0.
\echo
\echo '== snapshot history (last DAYS_BACK days) =='
WITH per_symbol AS (
    SELECT oc.time, oc.ticker_id, count(*) AS contracts
      FROM public.options_chains AS oc
     WHERE oc.time >= (SELECT max(time) FROM public.options_chains) - make_interval(days => :'DAYS_BACK'::int)
     GROUP BY oc.time, oc.ticker_id
)
SELECT p.time                                  AS snapshot_time,
       count(t.id)                             AS symbols,
       sum(p.contracts)                        AS contracts,
       count(*) FILTER (WHERE t.id IS NULL)    AS unresolved_tickers
  FROM per_symbol AS p
  LEFT JOIN public.tickers AS t ON t.id = p.ticker_id
 GROUP BY p.time
 ORDER BY p.time DESC;

-- The options jobs in the ingest_runs ledger.  Look for: status ok; snapshot_time equal to the
-- latest snapshot; a partial or failed run names its failed symbols in summary.
\echo
\echo '== latest options ingest runs (10 most recent) =='
SELECT r.started_at,
       r.job,
       r.status,
       date_trunc('second', r.finished_at - r.started_at) AS duration,
       r.snapshot_time,
       left(r.summary::text, 160)                         AS summary
  FROM public.ingest_runs AS r
 WHERE r.job ILIKE '%option%'
 ORDER BY r.started_at DESC
 LIMIT 10;
