-- The NYSE calendar for SQL readers, the rules of kapman/calendar.py (2000 onwards): the runbook
-- dashboards tell a session from a holiday, and a 16:00 close from a 13:00 one, with these two
-- functions instead of each carrying the rules.  A test holds them to kapman.calendar day by day.

-- The full-day closures on weekdays from first_day to last_day: the exchange's holidays (observed
-- on the Friday before a Saturday and the Monday after a Sunday, except that a Saturday New
-- Year's Day closes no Friday; Juneteenth from 2022) and the unscheduled closures since 2000.
CREATE FUNCTION public.nyse_closures(first_day date, last_day date) RETURNS SETOF date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH years AS (
        SELECT y AS year, y % 19 AS a, y / 100 AS b, y % 100 AS c
          FROM generate_series(extract(year FROM first_day)::int, extract(year FROM last_day)::int) AS y
    ), epact AS (
        SELECT year, a, b, c, (19 * a + b - b / 4 - (b - (b + 8) / 25 + 1) / 3 + 15) % 30 AS h FROM years
    ), easter AS (   -- the anonymous Gregorian algorithm
        SELECT year, make_date(year, (h + l - 7 * ((a + 11 * h + 22 * l) / 451) + 114) / 31,
                                     (h + l - 7 * ((a + 11 * h + 22 * l) / 451) + 114) % 31 + 1) AS sunday
          FROM (SELECT *, (32 + 2 * (b % 4) + 2 * (c / 4) - h - c % 4) % 7 AS l FROM epact) AS e
    ), nth AS (      -- the n-th given weekday (0 = Sunday) of a month; n = 5 is the last one
        SELECT CASE WHEN m.n < 5
                    THEN first_of + ((m.dow - extract(dow FROM first_of)::int + 7) % 7 + 7 * (m.n - 1))
                    ELSE last_of - ((extract(dow FROM last_of)::int - m.dow + 7) % 7)
               END AS day
          FROM years
         CROSS JOIN (VALUES (1, 1, 3), (2, 1, 3), (5, 1, 5), (9, 1, 1), (11, 4, 4)) AS m(month, dow, n)
         CROSS JOIN LATERAL (SELECT make_date(year, m.month, 1) AS first_of,
                                    (make_date(year, m.month, 1) + interval '1 month' - interval '1 day')::date
                                        AS last_of) AS bounds
    ), fixed AS (    -- July 4, Christmas and Juneteenth, moved off the weekend
        SELECT d + CASE extract(dow FROM d) WHEN 6 THEN -1 WHEN 0 THEN 1 ELSE 0 END AS day
          FROM years
         CROSS JOIN LATERAL (VALUES (make_date(year, 7, 4)), (make_date(year, 12, 25)),
                                    (CASE WHEN year >= 2022 THEN make_date(year, 6, 19) END)) AS v(d)
         WHERE d IS NOT NULL
    ), closures AS (
        SELECT day FROM nth
        UNION SELECT day FROM fixed
        UNION SELECT sunday - 2 FROM easter                        -- Good Friday
        UNION SELECT make_date(year, 1, 1) + CASE extract(dow FROM make_date(year, 1, 1)) WHEN 0 THEN 1 ELSE 0 END
                FROM years WHERE extract(dow FROM make_date(year, 1, 1)) <> 6
        UNION SELECT unnest('{2001-09-11,2001-09-12,2001-09-13,2001-09-14,2004-06-11,2007-01-02,2012-10-29,2012-10-30,2018-12-05,2025-01-09}'::date[])
    )
    SELECT day FROM closures WHERE day BETWEEN first_day AND last_day ORDER BY day
$$;

-- The sessions from first_day to last_day that close at 13:00 New York: July 3 and December 24
-- from Monday to Thursday and the day after Thanksgiving, when they are sessions, and the
-- one-offs (2002 closed early on July 5 instead of the 3rd; 2003 on December 26 too).
CREATE FUNCTION public.nyse_early_closes(first_day date, last_day date) RETURNS SETOF date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    WITH candidates AS (
        SELECT d AS day
          FROM generate_series(extract(year FROM first_day)::int, extract(year FROM last_day)::int) AS y(year)
         CROSS JOIN LATERAL (VALUES (make_date(y.year, 7, 3)), (make_date(y.year, 12, 24)),
                                    (make_date(y.year, 11, 1)
                                     + ((4 - extract(dow FROM make_date(y.year, 11, 1))::int + 7) % 7 + 22))) AS v(d)
         WHERE (extract(isodow FROM d) < 5 OR extract(month FROM d) = 11) AND d <> DATE '2002-07-03'
        UNION SELECT unnest('{2002-07-05,2003-12-26}'::date[])
    )
    SELECT day FROM candidates
     WHERE day BETWEEN first_day AND last_day
       AND extract(isodow FROM day) < 6
       AND day NOT IN (SELECT public.nyse_closures(first_day, last_day))
     ORDER BY day
$$;
