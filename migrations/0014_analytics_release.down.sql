-- Reverts 0014: back to 0008's materialized view, rebuilt on every refresh.
SET LOCAL ROLE phi_owner;
DROP VIEW analytics.submissions_weekly;
DROP FUNCTION analytics.release();
DROP TABLE analytics.releases;
DROP TABLE analytics.released_weekly;
CREATE MATERIALIZED VIEW analytics.submissions_weekly AS
  SELECT f.week, f.region, f.age_band, c.category, count(*) AS submissions
  FROM submission_facts f
  CROSS JOIN LATERAL unnest(CASE WHEN cardinality(f.categories) = 0
                                 THEN ARRAY['other'] ELSE f.categories END) AS c(category)
  GROUP BY 1, 2, 3, 4
  HAVING count(*) >= 5;
CREATE UNIQUE INDEX submissions_weekly_key ON analytics.submissions_weekly (week, region, age_band, category);
CREATE OR REPLACE FUNCTION analytics.refresh() RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  REFRESH MATERIALIZED VIEW CONCURRENTLY analytics.submissions_weekly;
  REFRESH MATERIALIZED VIEW CONCURRENTLY analytics.practitioners_by_region;
  REFRESH MATERIALIZED VIEW CONCURRENTLY analytics.herb_catalogue;
END $$;
GRANT SELECT ON analytics.submissions_weekly TO phi_analytics;
RESET ROLE;
