-- @begin
SELECT id, slug, name, scientific_name, description, status, tcm_properties, created_at, updated_at FROM herbs WHERE TRUE AND tcm_properties @> '{"meridians":["liver"],"taste":["bitter"]}' ORDER BY name ASC, id ASC LIMIT 10 OFFSET 0;
SELECT count(*) FROM herbs WHERE TRUE AND tcm_properties @> '{"meridians":["liver"],"taste":["bitter"]}';
COMMIT;
