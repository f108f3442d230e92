-- wrk: POST /v1/consent/check with prepared bodies (10,000 numbers each), in rotation.
-- env: CL_KEY (API key with the check scope), CL_BODIES (a directory holding body-1.json ..
--      body-N.json, written by bench/run.py)
local key = os.getenv("CL_KEY")
local dir = os.getenv("CL_BODIES")
local bodies = {}
local next_body = 1
local headers

function init(args)
  local i = 1
  while true do
    local f = io.open(dir .. "/body-" .. i .. ".json", "rb")
    if f == nil then break end
    bodies[i] = f:read("*a")
    f:close()
    i = i + 1
  end
  assert(#bodies > 0, "no bodies in " .. tostring(dir))
  headers = { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }
end

function request()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/v1/consent/check", headers, body)
end
