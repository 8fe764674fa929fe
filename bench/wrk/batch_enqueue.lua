-- Workload "batch enqueue": POST /tasks/batch with 100 small tasks; every answer must be 201.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local BATCH = 100
local items = {}
for i = 1, BATCH do
  items[i] = '{"payload":{"job":"send_email","n":' .. i .. '}}'
end

wrk.method = "POST"
wrk.path = "/tasks/batch"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"tasks":[' .. table.concat(items, ",") .. ']}'

function response(status, headers, body)
  if expect(status, 201) then
    tasks = tasks + BATCH
  end
end
