-- wrk: POST /v1/webhooks/8x8, an inbound STOP with a unique umid per request.
-- env: CL_KEY (API key with the ingest scope, sent as the Basic password like 8x8 does),
--      CL_RUN (a prefix that makes umids unique across runs),
--      CL_PATH (default /v1/webhooks/8x8; the benchmark's baseline posts to /hello),
--      CL_NODES (optional "host:port,host:port,...": wrk thread i sends to node i, round-robin,
--      so run wrk with -t set to the number of nodes; one latency histogram for all of them)
local key = os.getenv("CL_KEY") or "none"
local path = os.getenv("CL_PATH") or "/v1/webhooks/8x8"
local run = os.getenv("CL_RUN") or tostring(os.time())
local threads = 0
local nodes = {}
for node in string.gmatch(os.getenv("CL_NODES") or "", "[^,]+") do
  nodes[#nodes + 1] = node
end

-- base64 for the Basic header (wrk's Lua has no library for it)
local b = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(data)
  return ((data:gsub(".", function(x)
    local r, byte = "", x:byte()
    for i = 8, 1, -1 do r = r .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
  if #nodes > 0 then
    local node = nodes[(threads - 1) % #nodes + 1]
    local host, port = node:match("^(.+):(%d+)$")
    thread.addr = wrk.lookup(host, port)[1]
  end
end

local sent = 0
local auth

function init(args)
  auth = "Basic " .. base64("8x8:" .. key)
  math.randomseed(os.time() + (tid or 0) * 104729)
end

function request()
  sent = sent + 1
  local umid = string.format("bench-%s-%d-%d", run, tid or 0, sent)
  local source = string.format("+659%07d", math.random(1000000, 8999999))
  local body = string.format(
    '{"namespace":"SMS","eventType":"inbound_message_received","description":"SMS inbound message",' ..
    '"payload":{"umid":"%s","subAccountId":"ACME_MKT","timestamp":"2026-03-02T09:15:27.431Z",' ..
    '"source":"%s","destination":"+6590001111","body":"STOP","encoding":"GSM7","smsCount":1}}',
    umid, source)
  return wrk.format("POST", path,
    { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, body)
end

