-- wrk: GET requests whose path is BENCH_TEMPLATE with "{w}" replaced by BENCH_BASE + the
-- request's number, so that every request asks for a size not asked before (cold renders).
local template = os.getenv("BENCH_TEMPLATE")
local base = tonumber(os.getenv("BENCH_BASE"))
local count = 0

request = function()
  count = count + 1
  local path = template:gsub("{w}", tostring(base + count))
  return wrk.format("GET", path, { ["Accept"] = "*/*" })
end
