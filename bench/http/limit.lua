-- BENCH_MAX_REQUESTS: each wrk thread stops after that many answers (a fixed
-- amount of work, for bench/ab.sh's instruction counts). Loaded by the request
-- scripts with dofile, from the repository's top (where the bench scripts run wrk).
local max = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "")
if max then
  local seen = 0
  response = function()
    seen = seen + 1
    if seen >= max then wrk.thread:stop() end
  end
end
