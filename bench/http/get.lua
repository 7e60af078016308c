-- wrk: GET a path (BENCH_PATH), or one of the ids in BENCH_IDS_FILE under
-- BENCH_PATH, as the bench user.
local token = os.getenv("BENCH_TOKEN")
local path = os.getenv("BENCH_PATH")
local ids = {}
local file = os.getenv("BENCH_IDS_FILE")
if file and file ~= "" then
  for line in io.lines(file) do ids[#ids + 1] = line end
end
if token and token ~= "" then wrk.headers["Authorization"] = "JWT " .. token end
request = function()
  if #ids > 0 then
    return wrk.format("GET", path .. ids[math.random(#ids)])
  end
  return wrk.format("GET", path)
end
dofile("bench/http/limit.lua")
