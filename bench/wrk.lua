-- wrk script for the gateway section. Method, body and bearer token(s) come from the environment; prints a
-- one-line JSON summary (prefixed BENCH_JSON) that bench/gateway.py parses.
--   BENCH_METHOD       GET (default) or POST
--   BENCH_BODY         JSON request body (sent with Content-Type: application/json)
--   BENCH_TOKEN        one bearer token for every request, or
--   BENCH_TOKENS_FILE  a file of tokens, one a line, used round-robin: the gateway limits requests per
--                      account (300 per 5 minutes by default), so load is spread over many accounts
local method = os.getenv("BENCH_METHOD") or "GET"
local token = os.getenv("BENCH_TOKEN")
local body = os.getenv("BENCH_BODY")
local tokens_file = os.getenv("BENCH_TOKENS_FILE")

if body == "" then body = nil end
wrk.method = method
if body then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

local tokens = {}
if tokens_file and tokens_file ~= "" then
  for line in io.lines(tokens_file) do
    if line ~= "" then tokens[#tokens + 1] = line end
  end
end

if #tokens > 0 then
  local i = math.random(#tokens)
  request = function()
    i = i % #tokens + 1
    local headers = {}
    for k, v in pairs(wrk.headers) do headers[k] = v end
    headers["Authorization"] = "Bearer " .. tokens[i]
    return wrk.format(nil, nil, headers, body)
  end
elseif token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
