-- Workload "dequeue + complete": POST /tasks/dequeue, then PUT /tasks/{id}/complete with the
-- lease id it handed out. The queue is prefilled by bench/http_bench.py; a 404 means it ran dry.
--
-- Connections share this thread's FIFO of leased tasks: whichever connection is ready next
-- completes the oldest leased task, else dequeues another.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local leased, head, tail = {}, 1, 0
local dequeue

function prepare()
  dequeue = wrk.format("POST", "/tasks/dequeue", PLAIN_HEADERS)
end

function request()
  if head <= tail then
    local path = leased[head]
    leased[head] = nil
    head = head + 1
    return wrk.format("PUT", path, PLAIN_HEADERS)
  end
  return dequeue
end

function response(status, headers, body)
  if status == 404 then
    empty = empty + 1
  end
  if not expect(status, 200) then
    return
  end
  -- The answer tells which request it was: a dequeued task is "processing", a finished one
  -- "completed" (response() is not told the request).
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
