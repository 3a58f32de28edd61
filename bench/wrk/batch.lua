-- POST /v1/events with a batch of 100 events per request, each for a new customer.
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local n = 0
local headers = {["Content-Type"] = "application/json"}

request = function()
  local events = {}
  for i = 1, 100 do
    n = n + 1
    events[i] = string.format(
      '{"customer_id":"b%d-%d","type":"viewed_offer","properties":{"model":"Octavia","page":"/offers/winter"}}',
      tid, n)
  end
  return wrk.format("POST", "/v1/events", headers, "[" .. table.concat(events, ",") .. "]")
end
