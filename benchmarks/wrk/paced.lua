-- Like post.lua, but each connection waits before every request: a fixed request rate.
--   wrk -s paced.lua URL -- <body file> <Authorization header value> <mean delay in ms>
-- wrk has no rate option; its delay() hook returns the milliseconds a connection waits before
-- sending its next request (the wait is not counted in the latency). With c connections and a
-- mean delay d, the rate is about c * 1000 / (d + latency); bench_server.py picks d for the
-- target rate and checks the rate wrk achieved. Delays are drawn uniformly from [0, 2d] so the
-- connections do not fire in lockstep, which would turn a steady rate into bursts.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "post.lua")

local post_init = init
local mean_ms = 0

function init(args)
  post_init(args)
  mean_ms = tonumber(args[3]) or 0
  -- Threads share no state: seed each one differently.
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 100000)
end

function delay()
  -- wrk truncates the value to whole milliseconds: adding 0.5 makes that a rounding.
  return math.random() * 2 * mean_ms + 0.5
end
