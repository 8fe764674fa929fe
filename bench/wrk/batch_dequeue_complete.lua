-- Workload "batch dequeue + batch complete": POST /tasks/dequeue/batch?count=100, then
-- POST /tasks/complete/batch with every id and lease id it handed out. The queue is prefilled
-- by bench/http_bench.py; an empty list means it ran dry. Only items answered 200 count as tasks.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local BATCH = 100
local pending, head, tail = {}, 1, 0 -- completion bodies waiting to be sent, with their sizes
local dequeue

function prepare()
  dequeue = wrk.format("POST", "/tasks/dequeue/batch?count=" .. BATCH, PLAIN_HEADERS)
end

function request()
  if head <= tail then
    local item = pending[head]
    pending[head] = nil
    head = head + 1
    return wrk.format("POST", "/tasks/complete/batch", JSON_HEADERS, item)
  end
  return dequeue
end

function response(status, headers, body)
  if not expect(status, 200) then
    return
  end
  if body:sub(1, 9) == '{"tasks":' then
    local ids, leases = {}, {}
    for id in body:gmatch('"id":"([^"]+)"') do
      ids[#ids + 1] = id
    end
    -- a task's own lease comes just before its expiry; its history names leases too
    for lease in body:gmatch('"lease_id":"([^"]+)","lease_expires_at"') do
      leases[#leases + 1] = lease
    end
    if #ids == 0 then
      empty = empty + 1
      return
    end
    if #ids ~= #leases then
      unexpected = unexpected + 1
      return
    end
    local items = {}
    for i = 1, #ids do
      items[i] = '{"id":"' .. ids[i] .. '","lease_id":"' .. leases[i] .. '"}'
    end
    tail = tail + 1
    pending[tail] = '{"tasks":[' .. table.concat(items, ",") .. ']}'
  elseif body:sub(1, 11) == '{"results":' then
    local _, completed = body:gsub('"status":200', "")
    local _, all = body:gsub('"status":', "")
    tasks = tasks + completed
    if completed ~= all then
      unexpected = unexpected + 1
    end
  else
    unexpected = unexpected + 1
  end
end
