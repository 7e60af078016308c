-- @begin
SELECT * FROM (SELECT id, slug, name, modalities, bio, city, region, country, postal_code, website, status, lat, lon, user_id, email, phone, licence_number, created_at, updated_at, earth_distance(phi_earth(51.5::float8, -0.12::float8), earth) AS distance_m FROM practitioners_visible WHERE TRUE ORDER BY earth <-> phi_earth(51.5::float8, -0.12::float8) LIMIT 10 OFFSET 0) knn WHERE distance_m <= 25000;
SELECT count(*) FROM (SELECT 1 FROM practitioners_visible WHERE TRUE AND earth_box(phi_earth(51.5::float8, -0.12::float8), 25000) @> earth AND earth_distance(phi_earth(51.5::float8, -0.12::float8), earth) <= 25000 LIMIT 1011) matches;
COMMIT;
