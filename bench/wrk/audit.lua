-- wrk: GET /v1/audit/{subaccount}/{msisdn} for one number, again and again.
-- env: CL_KEY (API key with the audit scope), CL_SUBACCOUNT, CL_MSISDN (URL-encoded)
local key = os.getenv("CL_KEY")
local path = "/v1/audit/" .. (os.getenv("CL_SUBACCOUNT") or "ACME_MKT") .. "/" ..
  (os.getenv("CL_MSISDN") or "%2B6581234567")
local headers

function init(args)
  headers = { ["Authorization"] = "Bearer " .. key }
end

function request()
  return wrk.format("GET", path, headers)
end
