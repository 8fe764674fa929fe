-- Workload "enqueue": POST /tasks with a small payload; every answer must be 201.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

wrk.method = "POST"
wrk.path = "/tasks"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"payload":{"job":"send_email","to":"user@example.com"}}'

function response(status, headers, body)
  if expect(status, 201) then
    tasks = tasks + 1
  end
end
