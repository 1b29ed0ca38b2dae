-- wrk script for benches/load.sh: replays pre-signed raw requests from a file, each thread
-- starting at its own offset and moving one request per call, so consecutive requests on a
-- connection never share a signature (or a keyId).
--
-- wrk ... -s benches/load.lua <url> -- <requests-file> [delay-ms]
-- The file holds, per request, its byte length, "\n", then the raw HTTP/1.1 request.
-- delay-ms > 0 makes each connection wait that long between requests (rate limiting; wrk
-- has no fixed-rate mode, wrk2 is not packaged).

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local reqs = {}
local idx = 0
local pause = 0

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #data do
    local nl = data:find("\n", pos, true)
    local len = tonumber(data:sub(pos, nl - 1))
    reqs[#reqs + 1] = data:sub(nl + 1, nl + len)
    pos = nl + 1 + len
  end
  -- `id` is set by setup() before init() runs in the thread's own Lua state.
  idx = (id * 7919) % #reqs
  pause = tonumber(args[2] or "0")
end

function request()
  idx = idx % #reqs + 1
  return reqs[idx]
end

function delay()
  return pause
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d rps=%.0f p50_us=%d p99_us=%d p999_us=%d max_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.requests / secs,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
