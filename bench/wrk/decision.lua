-- wrk: GET /v1/consent/{subaccount}/{msisdn}, one random number per request.
-- env: CL_KEY (API key with the check scope), CL_SUBACCOUNT (default ACME_MKT),
--      CL_NUMBERS (how many numbers the bulk loader put on file; half the requests ask for one of
--      them, half for a number drawn from the whole +6590000000 .. +6598999999 range, mostly not on file)
local key = os.getenv("CL_KEY")
local subaccount = os.getenv("CL_SUBACCOUNT") or "ACME_MKT"
local numbers = tonumber(os.getenv("CL_NUMBERS") or "1000")
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

local headers

function init(args)
  math.randomseed(os.time() + (seed or 0) * 7919)
  headers = { ["Authorization"] = "Bearer " .. key }
end

-- the loader's number(i): +659 followed by (i * 7919 + 12345) mod 9,000,000, 7 digits
local function on_file(i)
  return string.format("%%2B659%07d", (i * 7919 + 12345) % 9000000)
end

function request()
  local number
  if math.random(2) == 1 then
    number = on_file(math.random(0, numbers - 1))
  else
    number = string.format("%%2B659%07d", math.random(0, 8999999))
  end
  return wrk.format("GET", "/v1/consent/" .. subaccount .. "/" .. number, headers)
end
