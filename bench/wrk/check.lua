-- wrk: GET /v1/consent/{subaccount}/{msisdn} for random Singapore mobile numbers.
-- env: CL_KEY (API key with the check scope), CL_SUBACCOUNT (default ACME_MKT)
local key = os.getenv("CL_KEY")
local subaccount = os.getenv("CL_SUBACCOUNT") or "ACME_MKT"
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(os.time() + (seed or 0) * 7919)
end

function request()
  -- a third of the numbers fall in the seeded range (+6590000000 ..), so some are opted out
  local n
  if math.random(3) == 1 then n = 90000000 + math.random(0, 999) else n = 91000000 + math.random(0, 7999999) end
  local path = "/v1/consent/" .. subaccount .. "/%2B65" .. n
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. key })
end
