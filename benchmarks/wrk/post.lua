-- POST the same JSON body on every request, as fast as each connection allows (peak throughput).
--   wrk -s post.lua URL -- <body file> [<Authorization header value>]
-- The body is read from a file because wrk gives scripts no other way to receive a large value.
-- wrk runs init() in every thread and builds the request after it, so wrk.body set here is used.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  local file = assert(io.open(args[1], "rb"), "cannot open the body file " .. tostring(args[1]))
  wrk.body = file:read("*a")
  file:close()
  if args[2] ~= nil and args[2] ~= "" then
    wrk.headers["Authorization"] = args[2]
  end
end
