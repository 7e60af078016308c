-- wrk: one submission create per request, as the CMS sends it.
wrk.method = "POST"
wrk.path = "/api/symptom-submissions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "JWT " .. os.getenv("BENCH_TOKEN")
wrk.body = '{"symptoms":[{"name":"Lower back pain","severity":5,"onset":"2026-01-01","notes":"' ..
  string.rep("x", 200) .. '"}],"notes":"' .. string.rep("n", 1000) ..
  '","contactEmail":"bench@example.org","dateOfBirth":"1980-05-05"}'
-- BENCH_MAX_REQUESTS: each wrk thread stops after that many answers (a fixed
-- amount of work, for bench/ab.sh's instruction counts).
local max = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "")
if max then
  local seen = 0
  response = function()
    seen = seen + 1
    if seen >= max then wrk.thread:stop() end
  end
end
