-- The request Itinera's SMS connector makes (Twilio's Messages API): a form POST with basic
-- auth and an Idempotency-Key, so the sink does the same work for wrk as for the dispatcher.
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    "To=%%2B1555%07d&From=%%2B15550000000&Body=bench+c%d%%3A+Anna%%2C+your+winter+tyre+slot+is+ready.",
    n % 10000000, n)
  return wrk.format("POST", "/2010-04-01/Accounts/AC1/Messages.json", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic QUMxOnRva2Vu",
    ["Accept"] = "application/json",
    ["Idempotency-Key"] = "bench-" .. n,
  }, body)
end
