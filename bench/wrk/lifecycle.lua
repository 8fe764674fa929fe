-- Workload "lifecycle": enqueue, dequeue, complete, with no prefill. A dequeue is sent only
-- for a task this thread saw enqueued (201) and no one has dequeued yet, so it never finds the
-- queue empty; a leased task is completed by whichever connection is ready next.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local ready = 0 -- enqueued by this thread, not dequeued yet
local leased, head, tail = {}, 1, 0
local enqueue, dequeue

function prepare()
  enqueue = wrk.format(
    "POST", "/tasks", JSON_HEADERS, '{"payload":{"job":"send_email","to":"user@example.com"}}')
  dequeue = wrk.format("POST", "/tasks/dequeue", PLAIN_HEADERS)
end

function request()
  if head <= tail then
    local path = leased[head]
    leased[head] = nil
    head = head + 1
    return wrk.format("PUT", path, PLAIN_HEADERS)
  end
  if ready > 0 then
    ready = ready - 1
    return dequeue
  end
  return enqueue
end

function response(status, headers, body)
  if status == 201 then
    ready = ready + 1
    return
  end
  if status == 404 then
    empty = empty + 1
  end
  if not expect(status, 200) then
    return
  end
  if body:find('"status":"processing"', 1, true) then
    local id = body:match('"id":"([^"]+)"')
    local lease = body:match('"lease_id":"([^"]+)"')
    tail = tail + 1
    leased[tail] = "/tasks/" .. id .. "/complete?lease_id=" .. lease
  elseif body:find('"status":"completed"', 1, true) then
    tasks = tasks + 1
  else
    unexpected = unexpected + 1
  end
end
