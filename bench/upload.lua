-- wrk: multipart uploads of one file (BENCH_FILE, sent as BENCH_NAME), as browsers send them.
-- BENCH_AUTH: an Authorization header, or empty. BENCH_CREDS: a file of single-use credentials,
-- one per line as tab-separated name/value pairs (each request takes the next), or empty.
local boundary = "----uploadauthbench7f3a9c"
local function field(name, value)
  return "--" .. boundary .. '\r\nContent-Disposition: form-data; name="' .. name .. '"\r\n\r\n'
    .. value .. "\r\n"
end

local stream = assert(io.open(os.getenv("BENCH_FILE"), "rb"))
local data = stream:read("*a")
stream:close()
local name = os.getenv("BENCH_NAME")
local head = field("fileName", name)
local file_part = "--" .. boundary .. '\r\nContent-Disposition: form-data; name="file"; filename="'
  .. name
local tail = '"\r\nContent-Type: application/octet-stream\r\n\r\n' .. data .. "\r\n--"
  .. boundary .. "--\r\n"
-- LuaJIT interns every string, hashing a long one by its length and four of its words: bodies
-- of one length that differ only in their credential share one hash, and each new one is
-- compared with all those still alive (at 1 MB the load generator, not the server, set the
-- pace). The file part's name, which no contender reads (the stored name is the fileName
-- field), is padded to give the bodies 64 lengths.
local pads = {}
for i = 0, 63 do
  pads[i + 1] = string.rep("_", i)
end

local credentials = {}
local path = os.getenv("BENCH_CREDS") or ""
if path ~= "" then
  for line in io.lines(path) do
    local parts = ""
    for key, value in line:gmatch("([^\t]+)\t([^\t]+)") do
      parts = parts .. field(key, value)
    end
    credentials[#credentials + 1] = parts
  end
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
local auth = os.getenv("BENCH_AUTH") or ""
if auth ~= "" then
  wrk.headers["Authorization"] = auth
end

local sent = 0
request = function()
  sent = sent + 1
  local parts = ""
  if #credentials > 0 then
    parts = credentials[(sent - 1) % #credentials + 1]
  end
  return wrk.format(nil, nil, nil, head .. parts .. file_part .. pads[sent % 64 + 1] .. tail)
end
