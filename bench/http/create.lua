-- wrk: one submission create per request, as the CMS sends it.
wrk.method = "POST"
wrk.path = "/api/symptom-submissions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "JWT " .. os.getenv("BENCH_TOKEN")
wrk.body = '{"symptoms":[{"name":"Lower back pain","severity":5,"onset":"2026-01-01","notes":"' ..
  string.rep("x", 200) .. '"}],"notes":"' .. string.rep("n", 1000) ..
  '","contactEmail":"bench@example.org","dateOfBirth":"1980-05-05"}'
dofile("bench/http/limit.lua")
