-- @begin
SELECT id, slug, name, scientific_name, description, status, tcm_properties, created_at, updated_at FROM herbs_visible WHERE TRUE AND tcm_properties @> '{"meridians":["liver"],"taste":["bitter"]}' ORDER BY name ASC, id ASC LIMIT 10 OFFSET 0;
SELECT count(*) FROM (SELECT 1 FROM herbs_visible WHERE TRUE AND tcm_properties @> '{"meridians":["liver"],"taste":["bitter"]}' LIMIT 1011) matches;
COMMIT;
