-- POST /v1/events with ONE event per request, each for a new customer ("w<thread>-<n>").
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local n = 0
local headers = {["Content-Type"] = "application/json"}

request = function()
  n = n + 1
  local body = string.format(
    '{"customer_id":"w%d-%d","type":"viewed_offer","properties":{"model":"Octavia","page":"/offers/winter"}}',
    tid, n)
  return wrk.format("POST", "/v1/events", headers, body)
end
