-- tornado_queue's Redis store: every operation is one call of run() below, so it is atomic
-- across servers. The store loads this file as a function library where Redis has them (7.0+:
-- the helpers are made once) and otherwise sends it as a script ending in run(KEYS, ARGV). KEYS[1] is the key prefix with its hash tag (e.g. "{tq}"): every key below starts
-- with it, so all of a store's keys live in one Cluster slot. ARGV[1] names the operation,
-- ARGV[2] is the caller's clock (wall seconds), ARGV[3] the retention in seconds, ARGV[4] the
-- calling server's origin id; the rest are the operation's arguments.
-- Each call returns {result, ready} where ready is a flat list of queue, count pairs, and
-- publishes "origin queue count" on <prefix>:ready for each of them, in the same atomic step,
-- so other servers hear of ready tasks without a second round trip.

-- The state of the call in progress, set by run() at its start: the helpers below are made
-- once (when Redis loads the library) and read these.
local P, op, now, origin
local ready, ready_order
-- the earliest time anything may fall due (a lease, a delay, a retention, a key's expiry), so
-- that most calls skip reaping with one GET; a lower bound, lowered when something earlier is
-- added and recomputed whenever a reap runs
local next_due

local function k(...) return P .. ':' .. table.concat({...}, ':') end

-- Times are written with every digit: Redis would print a Lua number with only 14.
local function num(x) return string.format('%.17g', x) end

local DUE = {'leases', 'sched', 'ret', 'idemexp'}

-- add `member` to the due-set `name` at time `at`, keeping next_due a lower bound
local function due(name, at, member)
  redis.call('ZADD', k(name), num(at), member)
  if at < next_due then
    next_due = at
    redis.call('SET', k('next'), num(at))
  end
end

local function became_ready_n(queue, n)
  if n == 0 then return end
  if not ready[queue] then ready[queue] = 0; table.insert(ready_order, queue) end
  ready[queue] = ready[queue] + n
end

local function became_ready(queue) became_ready_n(queue, 1) end

local function answer(result)
  local flat = {}
  for _, queue in ipairs(ready_order) do
    table.insert(flat, queue)
    table.insert(flat, ready[queue])
    redis.call('PUBLISH', P .. ':ready', origin .. ' ' .. queue .. ' ' .. ready[queue])
  end
  return {result, flat}
end

local function count(queue, status, delta)
  redis.call('HINCRBY', k('c', queue), status, delta)
  if delta < 0 then
    -- a queue is listed while it holds tasks: forget it once every count is back to zero
    for _, n in ipairs(redis.call('HVALS', k('c', queue))) do
      if tonumber(n) ~= 0 then return end
    end
    -- its settings stay (only configure clears them): a configured queue is still listed,
    -- through k('configured')
    redis.call('DEL', k('c', queue))
    redis.call('SREM', k('queues'), queue)
    -- its event totals join those of every queue that emptied (field ''), so totals stay
    -- bounded by the queues in use
    for _, name in ipairs({'enqueued', 'completed', 'failed', 'lease_expired'}) do
      local n = redis.call('HGET', k('e', name), queue)
      if n then
        redis.call('HINCRBY', k('e', name), '', n)
        redis.call('HDEL', k('e', name), queue)
      end
    end
  end
end

-- processing and failed tasks are listed per queue in a zset scored by when they entered
-- that state (a counter), so a page of them never scans
local LISTED = {processing = true, failed = true}

local function list(id, queue, status)
  if LISTED[status] then redis.call('ZADD', k('s', queue, status), redis.call('INCR', k('moves')), id) end
end

local function unlist(id, queue, status)
  if LISTED[status] then redis.call('ZREM', k('s', queue, status), id) end
end

-- events per queue since the store began: one hash per event, a field per queue
local function event(queue, name) redis.call('HINCRBY', k('e', name), queue, 1) end

local function move(id, queue, from, to)
  if from ~= to then
    count(queue, to, 1)  -- up first, so the queue never looks empty
    count(queue, from, -1)
    unlist(id, queue, from)
    list(id, queue, to)
    redis.call('HSET', k('t', id), 'status', to)
  end
end

local function field(id, name) return redis.call('HGET', k('t', id), name) end

-- tasks held in all states: the sum of every queue's counts (only read when --max-tasks is set)
local function held_total()
  local total = 0
  for _, queue in ipairs(redis.call('SMEMBERS', k('queues'))) do
    for _, n in ipairs(redis.call('HVALS', k('c', queue))) do total = total + tonumber(n) end
  end
  return total
end

local function push_pending(id, queue, priority, seq)
  redis.call('ZADD', k('q', queue, priority), seq, id)
  redis.call('ZADD', k('prios', queue), -tonumber(priority), priority)
end

local function append(id, status)
  -- join the tail of its queue and priority
  local queue, priority = unpack(redis.call('HMGET', k('t', id), 'queue', 'priority'))
  local seq = redis.call('INCR', k('seq'))
  redis.call('HSET', k('t', id), 'seq', seq, 'available_at', num(now))
  move(id, queue, status, 'pending')
  push_pending(id, queue, priority, seq)
  became_ready(queue)
end

local function clear_lease(id)
  redis.call('HDEL', k('t', id), 'lease_id', 'lease_expires_at')
  redis.call('ZREM', k('leases'), id)
end

local function put_back(id)
  -- back to its original place: it keeps its seq
  local queue, priority, seq = unpack(redis.call('HMGET', k('t', id), 'queue', 'priority', 'seq'))
  clear_lease(id)
  redis.call('HDEL', k('t', id), 'started_at')
  move(id, queue, 'processing', 'pending')
  push_pending(id, queue, priority, seq)
  became_ready(queue)
end

local function finish(id, status, retention)
  local queue, from = unpack(redis.call('HMGET', k('t', id), 'queue', 'status'))
  clear_lease(id)
  local forget_at = num(now + retention)
  redis.call('HSET', k('t', id), 'finished_at', num(now), 'forget_at', forget_at)
  move(id, queue, from, status)
  if status == 'failed' then event(queue, 'failed') end
  due('ret', now + retention, id)
end

local function remove_task(id)
  local queue, status, priority = unpack(redis.call('HMGET', k('t', id), 'queue', 'status', 'priority'))
  if status == 'pending' then
    redis.call('ZREM', k('q', queue, priority), id)
    if redis.call('ZCARD', k('q', queue, priority)) == 0 then
      redis.call('ZREM', k('prios', queue), priority)
    end
  end
  redis.call('ZREM', k('sched'), id)
  redis.call('ZREM', k('ret'), id)
  unlist(id, queue, status)
  count(queue, status, -1)
  redis.call('DEL', k('t', id))
end

local function reap(retention)
  if now < next_due then return end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', k('leases'), '-inf', num(now))) do
    local attempts, max_attempts, queue =
      unpack(redis.call('HMGET', k('t', id), 'attempts', 'max_attempts', 'queue'))
    event(queue, 'lease_expired')
    if tonumber(attempts) >= tonumber(max_attempts) then
      redis.call('HSET', k('t', id), 'error', 'lease expired')
      finish(id, 'failed', retention)
    else
      put_back(id)
    end
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', k('sched'), '-inf', num(now))) do
    redis.call('ZREM', k('sched'), id)
    append(id, 'scheduled')
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', k('ret'), '-inf', num(now))) do
    remove_task(id)
  end
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', k('idemexp'), '-inf', num(now))) do
    local task_id = redis.call('HGET', k('idem', key), 'id')
    if task_id and redis.call('EXISTS', k('t', task_id)) == 1 then
      -- a key lives at least as long as its task: look again a retention period later
      due('idemexp', now + retention, key)
    else
      redis.call('ZREM', k('idemexp'), key)
      redis.call('DEL', k('idem', key))
    end
  end  -- the earliest of what is left ('none' when nothing is)
  next_due = math.huge
  for _, name in ipairs(DUE) do
    local first = redis.call('ZRANGE', k(name), 0, 0, 'WITHSCORES')
    if first[2] then next_due = math.min(next_due, tonumber(first[2])) end
  end
  redis.call('SET', k('next'), next_due == math.huge and 'none' or num(next_due))
end

local function task(id)
  local flat = redis.call('HGETALL', k('t', id))
  if #flat == 0 then return false end
  return flat
end

local function known(id)
  if redis.call('EXISTS', k('t', id)) == 0 then
    return '!NOTFOUND ' .. id
  end
  return nil
end

local function leased(id, action, lease_id)
  local missing = known(id)
  if missing then return missing end
  local status, current = unpack(redis.call('HMGET', k('t', id), 'status', 'lease_id'))
  if lease_id ~= '' and current ~= lease_id then
    return '!LEASELOST ' .. action .. ' ' .. status
  end
  if status ~= 'processing' then
    return '!TRANSITION ' .. action .. ' ' .. status
  end
  return nil
end

-- a complete or fail that repeats the one that closed its lease (its first reply was lost) is
-- answered with the task as it is: the field closed_lease holds the lease that last completed or
-- failed the task
local function repeats_closing(id, action, lease_id)
  if lease_id == '' then return false end
  local status, current, closed =
    unpack(redis.call('HMGET', k('t', id), 'status', 'lease_id', 'closed_lease'))
  if not status or closed ~= lease_id or current == lease_id then return false end
  if action == 'complete' then return status == 'completed' end
  return status ~= 'completed'
end

-- only a fenced command is remembered: an unfenced repeat cannot be told from a stray call
local function close_lease(id, lease_id)
  if lease_id == '' then
    redis.call('HDEL', k('t', id), 'closed_lease')
  else
    redis.call('HSET', k('t', id), 'closed_lease', lease_id)
  end
end

local function schedule_or_append(id, status, delay)
  if delay <= 0 then
    append(id, status)
  else
    local queue = field(id, 'queue')
    redis.call('HSET', k('t', id), 'available_at', num(now + delay))
    move(id, queue, status, 'scheduled')
    due('sched', now + delay, id)
  end
end

-- a queue's settings: one hash per configured queue, a field per setting holding its JSON text
-- (so a new setting needs no new key), and the set of queues that have any
local function paused(queue) return redis.call('HGET', k('qs', queue), 'paused') == 'true' end

-- a queue's numeric setting (JSON number text), or nil when unset
local function setting(queue, name)
  local value = redis.call('HGET', k('qs', queue), name)
  return value and tonumber(value)
end

local function pop(queue)
  while true do
    local top = redis.call('ZRANGE', k('prios', queue), 0, 0)
    if #top == 0 then return nil end
    local popped = redis.call('ZPOPMIN', k('q', queue, top[1]))
    if #popped > 0 then return popped[1] end
    redis.call('ZREM', k('prios', queue), top[1])
  end
end


-- One call: ARGV as described at the top.
local function run(keys, ARGV)
  P, op, now, origin = keys[1], ARGV[1], tonumber(ARGV[2]), ARGV[4]
  ready, ready_order = {}, {}
  local retention = tonumber(ARGV[3])
  local stored_due = redis.call('GET', k('next'))
  if stored_due == 'none' then
    next_due = math.huge
  else
    next_due = stored_due and tonumber(stored_due) or -math.huge  -- unknown: reap, then know
  end
  reap(retention)
  local a = 5  -- first operation-specific argument
  local result

  if op == 'reap' then
    result = 0

  elseif op == 'enqueue' then
    -- n, then per task: id, queue, payload, priority, delay, max_attempts ('' for the default),
    -- key, fingerprint; then max_pending, max_tasks, max_queues and the policy's max_attempts
    local n = tonumber(ARGV[a])
    local items = {}
    for i = 0, n - 1 do
      local b = a + 1 + i * 8
      items[i + 1] = {ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], tonumber(ARGV[b + 4]),
                      ARGV[b + 5], ARGV[b + 6], ARGV[b + 7]}
    end
    local seen = {}
    local adding, adding_total, adding_order = {}, 0, {}
    for _, item in ipairs(items) do
      local key, fingerprint = item[7], item[8]
      local creates = true
      if key ~= '' then
        local remembered = redis.call('HGET', k('idem', key), 'fp') or seen[key]
        if remembered and remembered ~= fingerprint then
          return answer('!CONFLICT ' .. key)
        end
        creates = not remembered
        seen[key] = fingerprint
      end
      if creates then
        local queue = item[2]
        if not adding[queue] then adding[queue] = 0; table.insert(adding_order, queue) end
        adding[queue] = adding[queue] + 1
        adding_total = adding_total + 1
      end
    end
    -- limits (0: none), checked before anything changes, as every store does
    local max_pending, max_tasks = tonumber(ARGV[a + 1 + n * 8]), tonumber(ARGV[a + 2 + n * 8])
    local max_queues = tonumber(ARGV[a + 3 + n * 8])
    -- a task without its own max_attempts takes its queue's setting, else the policy's: read
    -- once per queue
    local policy_attempts, default_attempts = tonumber(ARGV[a + 4 + n * 8]), {}
    if max_queues > 0 and adding_total > 0 then
      local in_use = redis.call('SCARD', k('queues'))
      local new = {}
      for _, queue in ipairs(adding_order) do
        if redis.call('SISMEMBER', k('queues'), queue) == 0 then table.insert(new, queue) end
      end
      if #new > 0 and in_use + #new > max_queues then
        return answer('!TOOMANYQUEUES ' .. in_use .. ' ' .. max_queues .. ' ' .. new[1])
      end
    end
    if max_tasks > 0 and adding_total > 0 then
      local held = held_total()
      if held + adding_total > max_tasks then
        return answer('!STOREFULL ' .. held .. ' ' .. adding_total .. ' ' .. max_tasks)
      end
    end
    if max_pending > 0 then
      for _, queue in ipairs(adding_order) do
        local pending, scheduled = unpack(redis.call('HMGET', k('c', queue), 'pending', 'scheduled'))
        local waiting = (tonumber(pending) or 0) + (tonumber(scheduled) or 0)
        if waiting + adding[queue] > max_pending then
          return answer('!QUEUEFULL ' .. waiting .. ' ' .. adding[queue] .. ' ' .. max_pending .. ' ' .. queue)
        end
      end
    end
    result = {}
    for _, item in ipairs(items) do
      local id, queue, payload, priority, delay, max_attempts, key = unpack(item)
      local first = key ~= '' and redis.call('HGET', k('idem', key), 'id')
      if first then
        table.insert(result, {first, 0, task(first)})
      else
        -- ready now (the usual case): its place in line is taken here, in the one HSET
        local seq = delay <= 0 and redis.call('INCR', k('seq')) or 0
        if max_attempts == '' then
          if not default_attempts[queue] then
            default_attempts[queue] = setting(queue, 'max_attempts') or policy_attempts
          end
          max_attempts = default_attempts[queue]
        end
        redis.call('HSET', k('t', id), 'id', id, 'queue', queue, 'payload', payload,
          'status', 'pending', 'priority', priority, 'attempts', 0, 'max_attempts', max_attempts,
          'created_at', num(now), 'available_at', num(now), 'seq', seq)
        redis.call('SADD', k('queues'), queue)
        count(queue, 'pending', 1)
        event(queue, 'enqueued')
        if delay <= 0 then
          push_pending(id, queue, priority, seq)
          became_ready(queue)
        else
          schedule_or_append(id, 'pending', delay)
        end
        if key ~= '' then
          redis.call('HSET', k('idem', key), 'id', id, 'fp', item[8])
          due('idemexp', now + retention, key)
        end
        table.insert(result, {id, 1, task(id)})
      end
    end

  elseif op == 'dequeue' then
    -- queue, lease ('' for the default), the policy's lease, then a fresh lease id per task
    local queue = ARGV[a]
    -- the queue's settings in one read: whether it is paused, and its own lease
    local is_paused, own_lease =
      unpack(redis.call('HMGET', k('qs', queue), 'paused', 'lease_seconds'))
    -- a paused queue answers as an empty one: its tasks keep their places
    if is_paused == 'true' then return answer({}) end
    -- none given: the queue's setting, else the policy's
    local lease = tonumber(ARGV[a + 1]) or (own_lease and tonumber(own_lease))
      or tonumber(ARGV[a + 2])
    result = {}
    for i = a + 3, #ARGV do
      local id = pop(queue)
      if not id then break end
      move(id, queue, 'pending', 'processing')
      redis.call('HINCRBY', k('t', id), 'attempts', 1)
      redis.call('HSET', k('t', id), 'lease_id', ARGV[i], 'started_at', num(now),
        'lease_expires_at', num(now + lease))
      due('leases', now + lease, id)
      table.insert(result, task(id))
    end

  elseif op == 'heartbeat' then
    -- id, lease ('' for the default), lease_id, the policy's lease
    local id, lease, lease_id = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
    local refused = leased(id, 'heartbeat', lease_id)
    if refused then return answer(refused) end
    -- none given: its queue's setting, else the policy's
    lease = lease or setting(field(id, 'queue'), 'lease_seconds') or tonumber(ARGV[a + 3])
    redis.call('HSET', k('t', id), 'lease_expires_at', num(now + lease))
    due('leases', now + lease, id)
    result = task(id)

  elseif op == 'complete' then
    local id, has_result, value, lease_id = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
    -- the first result stands
    if repeats_closing(id, 'complete', lease_id) then return answer(task(id)) end
    local refused = leased(id, 'complete', lease_id)
    if refused then return answer(refused) end
    close_lease(id, lease_id)
    if has_result == '1' then redis.call('HSET', k('t', id), 'result', value) end
    finish(id, 'completed', retention)
    event(field(id, 'queue'), 'completed')
    result = task(id)

  elseif op == 'fail' then
    -- id, has_error, error, retry, lease_id, backoff base
    local id, has_error, message, retry, lease_id, base =
      ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], tonumber(ARGV[a + 5])
    -- no second attempt counted, no second backoff
    if repeats_closing(id, 'fail', lease_id) then return answer(task(id)) end
    local refused = leased(id, 'fail', lease_id)
    if refused then return answer(refused) end
    close_lease(id, lease_id)
    clear_lease(id)
    redis.call('HDEL', k('t', id), 'started_at', 'error')
    if has_error == '1' then redis.call('HSET', k('t', id), 'error', message) end
    local attempts, max_attempts = unpack(redis.call('HMGET', k('t', id), 'attempts', 'max_attempts'))
    attempts = tonumber(attempts)
    if retry == '1' and attempts < tonumber(max_attempts) then
      local backoff = math.min(base * 2 ^ math.min(attempts - 1, 40), 3600)
      schedule_or_append(id, 'processing', backoff)
    else
      finish(id, 'failed', retention)
    end
    result = task(id)

  elseif op == 'release' then
    local id, lease_id = ARGV[a], ARGV[a + 1]
    local refused = leased(id, 'release', lease_id)
    if refused then return answer(refused) end
    put_back(id)
    result = task(id)

  elseif op == 'retry' then
    local id = ARGV[a]
    local missing = known(id)
    if missing then return answer(missing) end
    local status = field(id, 'status')
    if status ~= 'failed' then return answer('!NOTFAILED ' .. status) end
    redis.call('HSET', k('t', id), 'attempts', 0)
    redis.call('HDEL', k('t', id), 'error', 'finished_at', 'forget_at', 'result', 'started_at')
    redis.call('ZREM', k('ret'), id)
    append(id, 'failed')
    result = task(id)

  elseif op == 'delete' then
    local id = ARGV[a]
    local missing = known(id)
    if missing then return answer(missing) end
    if field(id, 'status') == 'processing' then return answer('!PROCESSING') end
    remove_task(id)
    result = 0

  elseif op == 'get' then
    result = task(ARGV[a])

  elseif op == 'view' and ARGV[a + 3] ~= 'pending' then
    -- queue, limit, offset, status (processing or failed): the most recent first
    local queue, limit, offset, status = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3]
    local page = {}
    if limit > 0 then
      for _, id in ipairs(redis.call('ZREVRANGE', k('s', queue, status), offset, offset + limit - 1)) do
        table.insert(page, task(id))
      end
    end
    result = {page, tonumber(redis.call('HGET', k('c', queue), status) or 0)}

  elseif op == 'view' then
    -- queue, limit, offset, 'pending': walk the priorities from the highest; the page and the total
    local queue, limit, offset = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local page = {}
    for _, priority in ipairs(redis.call('ZRANGE', k('prios', queue), 0, -1)) do
      if limit <= 0 then break end
      local size = redis.call('ZCARD', k('q', queue, priority))
      if offset >= size then
        offset = offset - size
      else
        for _, id in ipairs(redis.call('ZRANGE', k('q', queue, priority), offset, offset + limit - 1)) do
          table.insert(page, task(id))
          limit = limit - 1
        end
        offset = 0
      end
    end
    result = {page, tonumber(redis.call('HGET', k('c', queue), 'pending') or 0)}

  elseif op == 'counts' then
    -- counts by queue: name, its hash, 1 when it has a setting (listed even with no task); of
    -- one queue when it is named, else of every queue holding tasks or configured
    local queues = ARGV[a] and {ARGV[a]} or redis.call('SUNION', k('queues'), k('configured'))
    result = {}
    for _, queue in ipairs(queues) do
      table.insert(result, {queue, redis.call('HGETALL', k('c', queue)),
        redis.call('SISMEMBER', k('configured'), queue)})
    end

  elseif op == 'settings' then
    -- queue: its settings hash (empty when never configured)
    result = redis.call('HGETALL', k('qs', ARGV[a]))

  elseif op == 'configure' then
    -- queue, then name, value pairs: a value is JSON text, '' clears the setting
    local queue = ARGV[a]
    local was_paused = paused(queue)
    for i = a + 1, #ARGV, 2 do
      if ARGV[i + 1] == '' then
        redis.call('HDEL', k('qs', queue), ARGV[i])
      else
        redis.call('HSET', k('qs', queue), ARGV[i], ARGV[i + 1])
      end
    end
    result = redis.call('HGETALL', k('qs', queue))
    if #result == 0 then
      redis.call('SREM', k('configured'), queue)
    else
      redis.call('SADD', k('configured'), queue)
    end
    if was_paused and not paused(queue) then
      -- resumed: its pending tasks are ready again, so parked consumers everywhere wake
      became_ready_n(queue, tonumber(redis.call('HGET', k('c', queue), 'pending') or 0))
    end

  elseif op == 'configured' then
    -- per configured queue: its name, then its settings hash
    result = {}
    for _, queue in ipairs(redis.call('SMEMBERS', k('configured'))) do
      table.insert(result, {queue, redis.call('HGETALL', k('qs', queue))})
    end

  elseif op == 'totals' then
    -- per event: its name, then its hash of queue -> count
    result = {}
    for i = a, #ARGV do
      table.insert(result, {ARGV[i], redis.call('HGETALL', k('e', ARGV[i]))})
    end

  elseif op == 'deadline' then
    local lease = redis.call('ZRANGE', k('leases'), 0, 0, 'WITHSCORES')
    local due = redis.call('ZRANGE', k('sched'), 0, 0, 'WITHSCORES')
    result = {lease[2] or false, due[2] or false}

  else
    return redis.error_reply('UNKNOWN operation ' .. op)
  end

  return answer(result)
end
