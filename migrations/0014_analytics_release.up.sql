-- Analytics that cannot be differenced (issue 20). 0008's weekly
-- aggregates were rebuilt on every refresh, week in progress included: an
-- analyst who knew a person submitted between two refreshes saw a cell go
-- from 5 to 6 and learned that person's symptom category.
--
-- Now a week is published once, after it has ended (and an hour more, for
-- transactions that began in it), and never again: later submissions
-- cannot land in it (a submission's week is the week it was created) and
-- amendments or deletions of its submissions do not change what was
-- published. What is published follows one release rule: a cell's count
-- is rounded to the nearest multiple of 5, and a cell of fewer than 10
-- submissions is not published at all. Two releases never cover the same
-- week, so there is no pair of refreshes to subtract.
SET LOCAL ROLE phi_owner;

DROP MATERIALIZED VIEW analytics.submissions_weekly;

-- The released cells, written by `analytics.release()` alone.
CREATE TABLE analytics.released_weekly (
  week         date NOT NULL,
  region       text NOT NULL,
  age_band     text NOT NULL,
  category     text NOT NULL,
  submissions  bigint NOT NULL CHECK (submissions >= 10 AND submissions % 5 = 0),
  PRIMARY KEY (week, region, age_band, category)
);
-- Which weeks are released, cells or none.
CREATE TABLE analytics.releases (
  week         date PRIMARY KEY,
  released_at  timestamptz NOT NULL DEFAULT now(),
  cells        integer NOT NULL
);

-- What analysts read: the same name and columns as before.
CREATE VIEW analytics.submissions_weekly AS
  SELECT week, region, age_band, category, submissions FROM analytics.released_weekly;

-- Publishes every closed week not yet published, under the release rule.
CREATE FUNCTION analytics.release() RETURNS integer
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  closed date := date_trunc('week', (now() - interval '1 hour') AT TIME ZONE 'UTC')::date;
  w date;
  n integer;
  released integer := 0;
BEGIN
  FOR w IN
    SELECT DISTINCT f.week FROM public.submission_facts f
    WHERE f.week < closed
      AND NOT EXISTS (SELECT 1 FROM analytics.releases r WHERE r.week = f.week)
    ORDER BY 1
  LOOP
    INSERT INTO analytics.released_weekly (week, region, age_band, category, submissions)
      SELECT f.week, f.region, f.age_band, c.category, (round(count(*) / 5.0) * 5)::bigint
      FROM public.submission_facts f
      CROSS JOIN LATERAL unnest(CASE WHEN cardinality(f.categories) = 0
                                     THEN ARRAY['other'] ELSE f.categories END) AS c(category)
      WHERE f.week = w
      GROUP BY 1, 2, 3, 4
      HAVING count(*) >= 10;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO analytics.releases (week, cells) VALUES (w, n);
    released := released + 1;
  END LOOP;
  RETURN released;
END $$;

-- The scheduled refresh: releases closed weeks, and rebuilds the
-- reference collections' views (no person in them).
CREATE OR REPLACE FUNCTION analytics.refresh() RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  PERFORM analytics.release();
  REFRESH MATERIALIZED VIEW CONCURRENTLY analytics.practitioners_by_region;
  REFRESH MATERIALIZED VIEW CONCURRENTLY analytics.herb_catalogue;
END $$;

GRANT SELECT ON analytics.submissions_weekly TO phi_analytics;
RESET ROLE;
