-- tornado_queue's Redis store: every operation is one call of run() below, so it is atomic
-- across servers. The store loads this file as a function library where Redis has them (7.0+:
-- the helpers are made once) and otherwise sends it as a script ending in run(KEYS, ARGV).
-- KEYS[1] is the key prefix with its hash tag (e.g. "{tq}"): every key below starts with it, so
-- all of a store's keys live in one Cluster slot. ARGV[1] names the operation, ARGV[2] is the
-- caller's clock (wall seconds, as Python's repr writes it), ARGV[3] the retention in seconds,
-- ARGV[4] the calling server's origin id; the rest are the operation's arguments.
-- Each call returns {result, ready, finished} where ready is a flat list of queue, count pairs,
-- and publishes "origin queue count" on <prefix>:ready for each of them, in the same atomic
-- step, so other servers hear of ready tasks without a second round trip. `finished` lists the
-- watched tasks (k('w', id) exists: someone waits for their result) that became completed or
-- failed, or were deleted; each is published as "origin id" on <prefix>:finished. A task nobody
-- watches costs one EXISTS when it finishes.
-- HISTORY (models.HISTORY_LENGTH), MAX_WORKERS (limits.MAX_WORKERS) and MAX_BACKOFF
-- (limits.MAX_BACKOFF_SECONDS) are set by the store in a line ahead of this file, so every store
-- keeps the same numbers.

-- The state of the call in progress, set by run() at its start: the helpers below are made
-- once (when Redis loads the library) and read these.
local P, op, now, now_text, origin
local ready, ready_order, finished_ids
-- the earliest time anything may fall due (a lease, a delay, a retention, a key's expiry), so
-- that most calls skip reaping with one GET; a lower bound, lowered when something earlier is
-- added and recomputed whenever a reap runs
local next_due

local function k(...) return P .. ':' .. table.concat({...}, ':') end

-- Times are written with every digit: Redis would print a Lua number with only 14. `now` is
-- written as the caller sent it (`now_text`: the shortest text that reads back as the same
-- number), which saves formatting it, several times a call.
local function num(x) return string.format('%.17g', x) end

-- due-sets: leases by expiry, scheduled tasks by due time, finished tasks by retention, keys by
-- expiry, tasks by their expires_at, and rate-limited queues by when their window next opens
-- for a consumer it turned away
local DUE = {'leases', 'sched', 'ret', 'idemexp', 'exp', 'wake'}

local EXPIRED_ERROR = 'expired: not delivered before its expires_at'
local EVENTS = {'enqueued', 'completed', 'failed', 'lease_expired', 'dead_lettered', 'expired'}

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
  for _, id in ipairs(finished_ids) do
    redis.call('PUBLISH', P .. ':finished', origin .. ' ' .. id)
  end
  return {result, flat, finished_ids}
end

-- a task finished or went: waiters on its result hear of it, if anyone watches it
local function settled(id)
  if redis.call('EXISTS', k('w', id)) == 1 then table.insert(finished_ids, id) end
end

-- The event feed: while k('feed_on') exists (an event stream client is connected to some
-- server, which refreshes it), each change is one entry of the stream k('feed'), whose ids are
-- the events' ids: its name, the task's id, queue, status and attempts after the change, when,
-- and the lease, worker and error where they apply. The key holds how many events to keep.
--
-- Where the code is a function library, loaded once, what the key said is remembered across
-- calls (per prefix) and read again every FEED_RECHECK changes: a store nobody streams from
-- pays one GET per hundred changes, not one per call. Switching it on goes through this code
-- ('feed_on'), so it takes effect at once; the key's expiry (its servers went away) is noticed
-- within a hundred changes. Run as a plain script, the key is read once per call that records.
local FEED_RECHECK = 100
local feeds = {}  -- prefix -> {events kept (false: off), changes before reading the key again}

local function feed_kept()
  local known = feeds[P]
  if known and known[2] > 0 then
    known[2] = known[2] - 1
    return known[1]
  end
  local kept = tonumber(redis.call('GET', k('feed_on'))) or false
  feeds[P] = {kept, FEED_RECHECK}
  return kept
end

local function record(id, name, lease, worker, err)
  local kept = feed_kept()
  if not kept then return end
  local queue, status, attempts = unpack(redis.call('HMGET', k('t', id), 'queue', 'status',
    'attempts'))
  local entry = {'XADD', k('feed'), 'MAXLEN', '~', kept, '*', 'event', name, 'id', id,
    'queue', queue, 'status', status, 'at', now_text, 'attempts', attempts}
  if lease then table.insert(entry, 'lease_id'); table.insert(entry, lease) end
  if worker then table.insert(entry, 'worker'); table.insert(entry, worker) end
  if err then table.insert(entry, 'error'); table.insert(entry, err) end
  redis.call(unpack(entry))
end

-- A task's history: k('h', id) lists its changes after its enqueue, oldest first, the last
-- HISTORY of them (a task that was only enqueued has none: most pending tasks cost nothing).
-- An entry is "at event lease worker", then " error" when there is one; an empty lease or
-- worker is none (neither holds a space).
local function entry_text(at, name, lease, worker, err)
  local entry = at .. ' ' .. name .. ' ' .. (lease or '') .. ' ' .. (worker or '')
  if err then entry = entry .. ' ' .. err end
  return entry
end

-- Record a change now; returns the history's length and the entry.
local function note(id, name, lease, worker, err)
  local entry = entry_text(now_text, name, lease, worker, err)
  local key = k('h', id)
  local n = redis.call('RPUSH', key, entry)
  if n > HISTORY then
    redis.call('LTRIM', key, -HISTORY, -1)
    n = HISTORY
  end
  record(id, name, lease, worker, err)
  return n, entry
end

-- Workers, as consumers name themselves: k('workers') scores each by when it was last seen,
-- k('wh', worker) is the set of tasks it holds (delivered to it, still processing under that
-- delivery), k('wk', worker) counts its completed and failed attempts. The task's field
-- `worker` names the worker of its current lease. At most MAX_WORKERS are kept: a new one
-- makes the one seen longest ago forgotten.
local function saw(worker)
  if redis.call('ZADD', k('workers'), now_text, worker) == 1
      and redis.call('ZCARD', k('workers')) > MAX_WORKERS then
    local oldest = redis.call('ZPOPMIN', k('workers'))[1]
    redis.call('DEL', k('wh', oldest), k('wk', oldest))
  end
end

-- a processing task stopped processing ('completed', 'failed' or nil for neither): the worker
-- its lease was delivered to, if it named one, holds it no more (and counts it, unless it was
-- forgotten meanwhile: then it held nothing)
local function let_go(id, worker, outcome)
  if worker and redis.call('SREM', k('wh', worker), id) == 1 and outcome then
    redis.call('HINCRBY', k('wk', worker), outcome, 1)
  end
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
    for _, name in ipairs(EVENTS) do
      local n = redis.call('HGET', k('e', name), queue)
      if n then
        redis.call('HINCRBY', k('e', name), '', n)
        redis.call('HDEL', k('e', name), queue)
      end
    end
  end
end

-- tasks in every state but pending are listed per queue in a zset scored by when they entered
-- that state (a counter), so a page of them never scans
local LISTED = {scheduled = true, waiting = true, processing = true, completed = true,
  failed = true}

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

-- Ordered groups: k('gh', queue) maps each group in use to its head (the task whose turn it
-- is: pending in the queue's order, processing, or scheduled for its retry). The tasks behind
-- it wait in k('gw', queue, group), a list of "seq id" oldest first (an entry whose task left
-- since is skipped when reached), marked `blocked` and listed in k('gwq', queue) by seq.

-- a task of `group` became ready: whether it is the group's turn (it is, or becomes, the head)
local function takes_turn(id, queue, group)
  local head = redis.call('HGET', k('gh', queue), group)
  if not head then
    redis.call('HSET', k('gh', queue), group, id)
    return true
  end
  return head == id
end

-- a pending task waits behind its group's head, keeping the place (seq) it joined at
local function wait_in_group(id, queue, group, seq)
  redis.call('RPUSH', k('gw', queue, group), seq .. ' ' .. id)
  redis.call('ZADD', k('gwq', queue), seq, id)
  redis.call('HSET', k('t', id), 'blocked', '1')
end

-- the task left its group's head (completed, dead, dead-lettered, expired, deleted): the next
-- waiting task becomes the head and deliverable at its place; a waiting task leaving the group
-- only stops being listed there
local function end_turn(id)
  local queue, group = unpack(redis.call('HMGET', k('t', id), 'queue', 'group'))
  if not group then return end
  if redis.call('HGET', k('gh', queue), group) ~= id then
    redis.call('ZREM', k('gwq', queue), id)
    redis.call('HDEL', k('t', id), 'blocked')
    return
  end
  while true do
    local entry = redis.call('LPOP', k('gw', queue, group))
    if not entry then
      redis.call('HDEL', k('gh', queue), group)
      return
    end
    local seq, next_id = string.match(entry, '^(%S+) (.+)$')
    local status, blocked, at, priority =
      unpack(redis.call('HMGET', k('t', next_id), 'status', 'blocked', 'seq', 'priority'))
    if status == 'pending' and blocked == '1' and at == seq then
      redis.call('HSET', k('gh', queue), group, next_id)
      redis.call('HDEL', k('t', next_id), 'blocked')
      redis.call('ZREM', k('gwq', queue), next_id)
      push_pending(next_id, queue, priority, seq)
      became_ready(queue)
      return
    end
  end
end

local function append(id, status)
  -- join the tail of its queue and priority, or of its group when it is not the group's turn
  local queue, priority, group =
    unpack(redis.call('HMGET', k('t', id), 'queue', 'priority', 'group'))
  local seq = redis.call('INCR', k('seq'))
  redis.call('HSET', k('t', id), 'seq', seq, 'available_at', now_text)
  move(id, queue, status, 'pending')
  if group and not takes_turn(id, queue, group) then
    wait_in_group(id, queue, group, seq)
    return
  end
  push_pending(id, queue, priority, seq)
  became_ready(queue)
end

local function clear_lease(id)
  redis.call('HDEL', k('t', id), 'lease_id', 'lease_expires_at', 'worker')
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

-- completed or failed, counted as `counted` (completed, failed or expired)
local function finish_one(id, status, retention, counted)
  local queue, from = unpack(redis.call('HMGET', k('t', id), 'queue', 'status'))
  clear_lease(id)
  local forget_at = num(now + retention)
  redis.call('HSET', k('t', id), 'finished_at', now_text, 'forget_at', forget_at)
  redis.call('HDEL', k('t', id), 'blocked')
  move(id, queue, from, status)
  event(queue, counted)
  due('ret', now + retention, id)
  settled(id)
end

-- Task dependencies: a task enqueued with `after` keeps its parents (field parents, JSON), how
-- many are not completed yet (waiting_on) and its delay (hold), and is `waiting` while any is
-- not; each parent keeps its dependents (field dependents, JSON, in the order they came).

-- a parent failed (why 'failed') or is being deleted ('deleted'): its waiting dependents fail,
-- naming it, and theirs in turn, naming them, down the chain
local function fail_dependents(id, why, retention)
  local stack = {{id, why}}
  while #stack > 0 do
    local parent, reason = unpack(table.remove(stack))
    local dependents = field(parent, 'dependents')
    if dependents then
      for _, child in ipairs(cjson.decode(dependents)) do
        if field(child, 'status') == 'waiting' then
          local verb = reason == 'deleted' and ' was deleted' or ' failed'
          local why_failed = "parent task '" .. parent .. "'" .. verb
          redis.call('HSET', k('t', child), 'error', why_failed)
          redis.call('ZREM', k('exp'), child)
          finish_one(child, 'failed', retention, 'failed')
          note(child, 'dead', nil, nil, why_failed)
          table.insert(stack, {child, 'failed'})
        end
      end
    end
  end
end

-- finish_one, and a task failed for good fails what waits for it
local function finish(id, status, retention, counted)
  finish_one(id, status, retention, counted)
  if status == 'failed' then fail_dependents(id, 'failed', retention) end
end

local function expired(id)
  local expires_at = redis.call('HGET', k('t', id), 'expires_at')
  return expires_at and tonumber(expires_at) <= now
end

-- take a pending task out of its queue's order (one waiting in its group is not in it)
local function unready(id)
  local queue, status, priority, blocked =
    unpack(redis.call('HMGET', k('t', id), 'queue', 'status', 'priority', 'blocked'))
  if status == 'pending' and blocked ~= '1' then
    redis.call('ZREM', k('q', queue, priority), id)
    if redis.call('ZCARD', k('q', queue, priority)) == 0 then
      redis.call('ZREM', k('prios', queue), priority)
    end
  end
end

-- a task past its expires_at (pending, scheduled, or just off its lease) becomes failed and is
-- never delivered, nor dead-lettered
local function expire(id, retention)
  unready(id)
  end_turn(id)
  redis.call('ZREM', k('sched'), id)
  redis.call('ZREM', k('exp'), id)
  redis.call('HSET', k('t', id), 'error', EXPIRED_ERROR)
  redis.call('HDEL', k('t', id), 'started_at')
  finish(id, 'failed', retention, 'expired')
  note(id, 'expired', nil, nil, EXPIRED_ERROR)
end

-- a JSON string setting (a queue name), or nil when unset
local function text_setting(queue, name)
  local value = redis.call('HGET', k('qs', queue), name)
  return value and cjson.decode(value)
end

-- a processing task that failed for good (under `lease`, delivered to `worker`): to its
-- queue's dead-letter queue, keeping its id and error, as pending with fresh attempts; else
-- failed
local function dead(id, retention, lease, worker)
  local source, err = unpack(redis.call('HMGET', k('t', id), 'queue', 'error'))
  local target = text_setting(source, 'dead_letter_queue')
  end_turn(id)
  if not target then
    finish(id, 'failed', retention, 'failed')
    note(id, 'dead', lease, worker, err)
    return
  end
  event(source, 'dead_lettered')
  unlist(id, source, 'processing')
  redis.call('HSET', k('t', id), 'queue', target, 'attempts', 0, 'dead_lettered_from', source)
  redis.call('HDEL', k('t', id), 'started_at')
  redis.call('SADD', k('queues'), target)
  count(target, 'processing', 1)
  list(id, target, 'processing')
  count(source, 'processing', -1)
  append(id, 'processing')
  local expires_at = field(id, 'expires_at')
  if expires_at then due('exp', tonumber(expires_at), id) end
  note(id, 'dead_lettered', lease, worker, err)
end

-- a task of `queue` stopped processing: under a concurrency cap, a waiter may take the next
local function slot_freed(queue)
  if ready[queue] or redis.call('HEXISTS', k('qs', queue), 'max_processing') == 0 then return end
  if tonumber(redis.call('HGET', k('c', queue), 'pending') or 0) > 0 then became_ready(queue) end
end

-- a task goes, with its history: deleted (an event, when `deleted`) or past its retention
local function remove_task(id, retention, deleted)
  local queue, status = unpack(redis.call('HMGET', k('t', id), 'queue', 'status'))
  unready(id)
  end_turn(id)
  fail_dependents(id, 'deleted', retention)
  redis.call('ZREM', k('exp'), id)
  redis.call('ZREM', k('sched'), id)
  redis.call('ZREM', k('ret'), id)
  unlist(id, queue, status)
  count(queue, status, -1)
  if deleted then record(id, 'deleted') end
  redis.call('DEL', k('t', id), k('h', id))
  settled(id)
end

local function reap(retention)
  if now < next_due then return end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', k('leases'), '-inf', now_text)) do
    local attempts, max_attempts, queue, lease, worker = unpack(redis.call('HMGET', k('t', id),
      'attempts', 'max_attempts', 'queue', 'lease_id', 'worker'))
    event(queue, 'lease_expired')
    let_go(id, worker)
    if expired(id) then
      clear_lease(id)
      note(id, 'lease_expired', lease, worker)
      expire(id, retention)
    elseif tonumber(attempts) >= tonumber(max_attempts) then
      redis.call('HSET', k('t', id), 'error', 'lease expired')
      clear_lease(id)
      note(id, 'lease_expired', lease, worker)
      dead(id, retention, lease, worker)
    else
      put_back(id)
      note(id, 'lease_expired', lease, worker)
    end
    slot_freed(queue)
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', k('sched'), '-inf', now_text)) do
    redis.call('ZREM', k('sched'), id)
    append(id, 'scheduled')
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', k('exp'), '-inf', now_text)) do
    redis.call('ZREM', k('exp'), id)
    local status = field(id, 'status')
    -- a processing task runs on: it expires when its lease ends
    if status == 'pending' or status == 'scheduled' or status == 'waiting' then
      expire(id, retention)
    end
  end
  for _, queue in ipairs(redis.call('ZRANGEBYSCORE', k('wake'), '-inf', now_text)) do
    -- a rate window opened for a consumer it turned away
    redis.call('ZREM', k('wake'), queue)
    local rate = redis.call('HGET', k('qs', queue), 'rate_limit')
    local pending = tonumber(redis.call('HGET', k('c', queue), 'pending') or 0)
    if rate and pending > 0 then
      became_ready_n(queue, math.min(pending, cjson.decode(rate).tasks))
    end
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', k('ret'), '-inf', now_text)) do
    remove_task(id, retention, false)
  end
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', k('idemexp'), '-inf', now_text)) do
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

-- a task as the store answers it: its hash, and its history (when it has one) as a last
-- field `history` holding the list of entries; `history` is given when the caller knows it
local function task(id, history)
  local flat = redis.call('HGETALL', k('t', id))
  if #flat == 0 then return false end
  history = history or redis.call('LRANGE', k('h', id), 0, -1)
  if #history > 0 then
    table.insert(flat, 'history')
    table.insert(flat, history)
  end
  return flat
end

local function known(id)
  if redis.call('EXISTS', k('t', id)) == 0 then
    return '!NOTFOUND ' .. id
  end
  return nil
end

-- a refusal, or nil and the task's lease, the worker it was delivered to (false for none) and
-- when (started_at)
local function leased(id, action, lease_id)
  local missing = known(id)
  if missing then return missing end
  local status, current, worker, started =
    unpack(redis.call('HMGET', k('t', id), 'status', 'lease_id', 'worker', 'started_at'))
  if lease_id ~= '' and current ~= lease_id then
    return '!LEASELOST ' .. action .. ' ' .. status
  end
  if status ~= 'processing' then
    return '!TRANSITION ' .. action .. ' ' .. status
  end
  return nil, current, worker, started
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

-- a queue's numeric setting (JSON number text), or nil when unset
local function setting(queue, name)
  local value = redis.call('HGET', k('qs', queue), name)
  return value and tonumber(value)
end

-- The rate limit, a sliding window: k('rl', queue) lists the times of the queue's last
-- `tasks` deliveries, newest first. Times older than the window never matter again (the clock
-- only moves on) and are dropped, so the room left is `tasks` minus the list's length.
local function rate_allowance(queue, rate, wanted)
  local log = k('rl', queue)
  -- Servers' calls can reach Redis in another order than their clocks read. The window keeps
  -- a clock that never goes back, k('rc', queue): the latest time it was judged at. A dequeue
  -- behind it is judged, and its deliveries timed, by that clock, so no delivery lands in a
  -- window that a later-timed dequeue has already moved past: the window holds exactly,
  -- whichever server's clock was ahead.
  local clock = redis.call('GET', k('rc', queue))
  if clock and tonumber(clock) > now then
    now, now_text = tonumber(clock), clock
  else
    redis.call('SET', k('rc', queue), now_text)
  end
  local opens = now - rate.seconds
  while true do
    local oldest = redis.call('LINDEX', log, -1)
    if not oldest or tonumber(oldest) > opens then break end
    redis.call('RPOP', log)
  end
  local room = rate.tasks - redis.call('LLEN', log)
  if room < wanted then return math.max(room, 0), true end
  return wanted, false
end

-- note `taken` deliveries now; a consumer turned away (`short`) is woken, through the ready
-- channel, when the oldest delivery in the window leaves it
local function note_deliveries(queue, rate, taken, short)
  local log = k('rl', queue)
  for _ = 1, taken do redis.call('LPUSH', log, now_text) end
  redis.call('LTRIM', log, 0, rate.tasks - 1)
  if short then
    local oldest = redis.call('LINDEX', log, -1)
    if oldest then due('wake', tonumber(oldest) + rate.seconds, queue) end
  end
end

-- whether a change of settings (paused, max_processing, rate_limit, push before and after, as
-- stored) may let a queue deliver tasks it did not before: resumed, a cap raised or lifted, a
-- rate limit changed or lifted, push set or cleared (its tasks go to other takers)
local function delivers_more(before, after)
  if (before[4] == false) ~= (after[4] == false) then return true end
  if before[1] == 'true' and after[1] ~= 'true' then return true end
  if after[1] == 'true' then return false end
  if before[2] and (not after[2] or tonumber(after[2]) > tonumber(before[2])) then return true end
  return before[3] ~= false and before[3] ~= nil and after[3] ~= before[3]
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

-- Enqueue the items (each a list as the 'enqueue' operation reads them), all or nothing:
-- the outcomes (id, created, task) in order, or nil and the refusal of the whole batch.
local ITEM_WIDTH = 13  -- arguments per task
local function enqueue(items, max_pending, max_tasks, max_queues, policy_attempts, retention,
    most_dependents)
  local seen = {}
  -- the id each item stands for (its own, or its key's first task), and the ids it creates
  local stands, made, first_of_key = {}, {}, {}
  local adding, adding_total, adding_order = {}, 0, {}
  for _, item in ipairs(items) do
    local key, fingerprint = item[7], item[8]
    local first
    if key ~= '' then
      local remembered, remembered_id = unpack(redis.call('HMGET', k('idem', key), 'fp', 'id'))
      remembered = remembered or seen[key]
      if remembered and remembered ~= fingerprint then
        return nil, '!CONFLICT ' .. key
      end
      seen[key] = fingerprint
      first = remembered_id or first_of_key[key]
      if not first then first_of_key[key] = item[1] end
    end
    table.insert(stands, first or item[1])
    if not first then
      made[item[1]] = true
      local queue = item[2]
      if not adding[queue] then adding[queue] = 0; table.insert(adding_order, queue) end
      adding[queue] = adding[queue] + 1
      adding_total = adding_total + 1
    end
  end
  -- limits (0: none), checked before anything changes, as every store does
  if max_queues > 0 and adding_total > 0 then
    local in_use = redis.call('SCARD', k('queues'))
    local new = {}
    for _, queue in ipairs(adding_order) do
      if redis.call('SISMEMBER', k('queues'), queue) == 0 then table.insert(new, queue) end
    end
    if #new > 0 and in_use + #new > max_queues then
      return nil, '!TOOMANYQUEUES ' .. in_use .. ' ' .. max_queues .. ' ' .. new[1]
    end
  end
  if max_tasks > 0 and adding_total > 0 then
    local held = held_total()
    if held + adding_total > max_tasks then
      return nil, '!STOREFULL ' .. held .. ' ' .. adding_total .. ' ' .. max_tasks
    end
  end
  if max_pending > 0 then
    for _, queue in ipairs(adding_order) do
      local pending, scheduled = unpack(redis.call('HMGET', k('c', queue), 'pending', 'scheduled'))
      local waiting = (tonumber(pending) or 0) + (tonumber(scheduled) or 0)
      if waiting + adding[queue] > max_pending then
        return nil, '!QUEUEFULL ' .. waiting .. ' ' .. adding[queue] .. ' ' .. max_pending .. ' ' .. queue
      end
    end
  end
  -- each created task's parents: all exist (or are made by an earlier item), none failed,
  -- none past the most dependents; checked before anything changes
  local parents, adding_dependents = {}, {}
  for i, item in ipairs(items) do
    if item[13] ~= '' and made[item[1]] then
      local label = #items == 1 and -1 or i - 1
      local chosen, named = {}, {}
      for _, parent in ipairs(cjson.decode(item[13])) do
        local pid = type(parent) == 'number' and stands[parent + 1] or parent
        if named[pid] then return nil, '!PARENTTWICE ' .. label .. ' ' .. pid end
        named[pid] = true
        table.insert(chosen, pid)
        adding_dependents[pid] = (adding_dependents[pid] or 0) + 1
        local status, dependents = unpack(redis.call('HMGET', k('t', pid), 'status', 'dependents'))
        if not status then
          if not made[pid] then return nil, '!PARENTUNKNOWN ' .. label .. ' ' .. pid end
        elseif status == 'failed' then
          return nil, '!PARENTFAILED ' .. label .. ' ' .. pid
        else
          local held = dependents and #cjson.decode(dependents) or 0
          if held + adding_dependents[pid] > most_dependents then
            return nil, '!DEPENDENTS ' .. label .. ' ' .. pid .. ' ' .. most_dependents
          end
        end
      end
      parents[i] = chosen
    end
  end
  -- the queue's settings shape its new tasks (attempts unless given, backoff base, expiry
  -- unless given): read once per queue
  local shaping = {}
  local result = {}
  for i, item in ipairs(items) do
    local id, queue, payload, priority, delay, max_attempts, key, _, group, expires_in,
      schedule, fire_time = unpack(item)
    if not made[id] then  -- a replay: the task its key (or an earlier item) stands for
      table.insert(result, {stands[i], 0, task(stands[i])})
    else
      -- ready now (the usual case): its place in line is taken here, in the one HSET
      local seq = delay <= 0 and redis.call('INCR', k('seq')) or 0
      local shape = shaping[queue]
      if not shape then
        shape = redis.call('HMGET', k('qs', queue), 'max_attempts', 'retry_backoff', 'ttl_seconds')
        shaping[queue] = shape
      end
      if max_attempts == '' then max_attempts = shape[1] or policy_attempts end
      redis.call('HSET', k('t', id), 'id', id, 'queue', queue, 'payload', payload,
        'status', 'pending', 'priority', priority, 'attempts', 0, 'max_attempts', max_attempts,
        'created_at', now_text, 'available_at', now_text, 'seq', seq)
      if shape[2] then redis.call('HSET', k('t', id), 'backoff', shape[2]) end
      local lifetime = tonumber(expires_in) or tonumber(shape[3])
      if lifetime then
        redis.call('HSET', k('t', id), 'expires_at', num(now + lifetime))
        due('exp', now + lifetime, id)
      end
      redis.call('SADD', k('queues'), queue)
      count(queue, 'pending', 1)
      event(queue, 'enqueued')
      if group ~= '' then redis.call('HSET', k('t', id), 'group', group) end
      if schedule ~= '' then
        redis.call('HSET', k('t', id), 'schedule', schedule, 'fire_time', fire_time)
      end
      local waiting_on = 0
      if parents[i] then
        for _, pid in ipairs(parents[i]) do
          local dependents = field(pid, 'dependents')
          local list = dependents and cjson.decode(dependents) or {}
          table.insert(list, id)
          redis.call('HSET', k('t', pid), 'dependents', cjson.encode(list))
          if field(pid, 'status') ~= 'completed' then waiting_on = waiting_on + 1 end
        end
        redis.call('HSET', k('t', id), 'parents', cjson.encode(parents[i]),
          'waiting_on', waiting_on, 'hold', num(delay))
      end
      if waiting_on > 0 then
        move(id, queue, 'pending', 'waiting')  -- its delay runs once its parents completed
      elseif delay > 0 then
        schedule_or_append(id, 'pending', delay)
      elseif group ~= '' and not takes_turn(id, queue, group) then
        wait_in_group(id, queue, group, seq)
      else
        push_pending(id, queue, priority, seq)
        became_ready(queue)
      end
      if key ~= '' then
        redis.call('HSET', k('idem', key), 'id', id, 'fp', item[8])
        due('idemexp', now + retention, key)
      end
      -- its enqueue is in no history (a task without one was only enqueued), only in the feed
      record(id, 'enqueued')
      if waiting_on > 0 then
        note(id, 'waiting')
        table.insert(result, {id, 1, task(id)})
      else
        table.insert(result, {id, 1, redis.call('HGETALL', k('t', id))})
      end
    end
  end

  return result
end

-- Schedules: k('sch', name) holds a schedule's fields (queue, payload, cron or every,
-- timezone, priority, max_attempts, paused, next_run_at, last_run_at, revision; an unset one
-- is absent), k('schedules') the set of names, and k('schruns') the running ones scored by
-- next_run_at, so the due ones are found in O(log n).
local SCHEDULE_FIELDS = {'queue', 'payload', 'cron', 'every', 'timezone', 'priority',
                         'max_attempts', 'paused', 'next_run_at'}

-- fire one occurrence of schedule `name` decided on its revision `revision` and due time
-- `expected`: refused ('stale') unless both are still what is stored; otherwise next_run_at
-- advances to `next_run`, and the task is enqueued unless `fire_time` is not after last_run_at
-- ('old') or the queue or store is full ('skipped', with the refusal)
local function fire_schedule(name, revision, expected, fire_time, next_run, id, limits)
  local key = k('sch', name)
  local stored_revision, stored_next, last, queue, payload, priority, max_attempts =
    unpack(redis.call('HMGET', key, 'revision', 'next_run_at', 'last_run_at', 'queue',
      'payload', 'priority', 'max_attempts'))
  if stored_revision ~= revision or not stored_next
      or tonumber(stored_next) ~= tonumber(expected) then
    return {'stale'}
  end
  redis.call('HSET', key, 'next_run_at', next_run)
  redis.call('ZADD', k('schruns'), next_run, name)
  if last and tonumber(fire_time) <= tonumber(last) then return {'old'} end
  local item = {id, queue, payload, priority, 0, max_attempts or '', '', '', '', '', name,
                fire_time, ''}
  local _, refusal = enqueue({item}, limits[1], limits[2], limits[3], limits[4], limits[5], 0)
  if refusal then return {'skipped', refusal} end
  redis.call('HSET', key, 'last_run_at', fire_time)
  return {'fired', id}
end

-- One call: ARGV as described at the top.
local function run(keys, ARGV)
  P, op, now, now_text, origin = keys[1], ARGV[1], tonumber(ARGV[2]), ARGV[2], ARGV[4]
  ready, ready_order, finished_ids = {}, {}, {}
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
    -- key, fingerprint, group ('' for none), expires_in ('' for the queue's ttl_seconds),
    -- schedule and fire_time ('' for none), after ('' for none, else a JSON list of task ids
    -- and indexes of earlier items); then max_pending, max_tasks, max_queues, the policy's
    -- max_attempts and the most dependents a task may have
    local n = tonumber(ARGV[a])
    local items = {}
    for i = 0, n - 1 do
      local b = a + 1 + i * ITEM_WIDTH
      items[i + 1] = {ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], tonumber(ARGV[b + 4]),
                      ARGV[b + 5], ARGV[b + 6], ARGV[b + 7], ARGV[b + 8], ARGV[b + 9],
                      ARGV[b + 10], ARGV[b + 11], ARGV[b + 12]}
    end
    local c = a + 1 + n * ITEM_WIDTH
    local refusal
    result, refusal = enqueue(items, tonumber(ARGV[c]), tonumber(ARGV[c + 1]),
      tonumber(ARGV[c + 2]), tonumber(ARGV[c + 3]), retention, tonumber(ARGV[c + 4]))
    if refusal then return answer(refusal) end
  elseif op == 'schedule_put' then
    -- name, the most schedules kept, then the value of each of SCHEDULE_FIELDS ('' for unset):
    -- {created, the schedule's hash}
    local name, most = ARGV[a], tonumber(ARGV[a + 1])
    local key = k('sch', name)
    local revision, last = unpack(redis.call('HMGET', key, 'revision', 'last_run_at'))
    if not revision and redis.call('SCARD', k('schedules')) >= most then
      return answer('!TOOMANYSCHEDULES ' .. most)
    end
    redis.call('DEL', key)
    for i, name_of in ipairs(SCHEDULE_FIELDS) do
      local value = ARGV[a + 1 + i]
      if value ~= '' then redis.call('HSET', key, name_of, value) end
    end
    redis.call('HSET', key, 'name', name, 'revision', (tonumber(revision) or 0) + 1)
    if last then redis.call('HSET', key, 'last_run_at', last) end
    redis.call('SADD', k('schedules'), name)
    local next_run = redis.call('HGET', key, 'next_run_at')
    if next_run then
      redis.call('ZADD', k('schruns'), next_run, name)
    else
      redis.call('ZREM', k('schruns'), name)
    end
    result = {revision and 0 or 1, redis.call('HGETALL', key)}

  elseif op == 'schedule_get' then
    -- name: its hash (empty when there is none)
    result = redis.call('HGETALL', k('sch', ARGV[a]))

  elseif op == 'schedule_list' then
    -- every schedule's hash
    result = {}
    for _, name in ipairs(redis.call('SMEMBERS', k('schedules'))) do
      table.insert(result, redis.call('HGETALL', k('sch', name)))
    end

  elseif op == 'schedule_delete' then
    -- name: 1 when it was there
    local name = ARGV[a]
    redis.call('ZREM', k('schruns'), name)
    redis.call('DEL', k('sch', name))
    result = redis.call('SREM', k('schedules'), name)

  elseif op == 'schedule_due' then
    -- limit: the hashes of up to `limit` schedules due now, earliest first, and the due time
    -- of the first one after them (false when none)
    local names = redis.call('ZRANGEBYSCORE', k('schruns'), '-inf', now_text, 'LIMIT', 0,
      tonumber(ARGV[a]))
    local found = {}
    for _, name in ipairs(names) do table.insert(found, redis.call('HGETALL', k('sch', name))) end
    local after = redis.call('ZRANGE', k('schruns'), #names, #names, 'WITHSCORES')
    result = {found, after[2] or false}

  elseif op == 'schedule_fire' then
    -- max_pending, max_tasks, max_queues, the policy's max_attempts, then per occurrence: name,
    -- revision, expected next_run_at, fire_time, the next run, a fresh task id
    local limits = {tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]),
                    tonumber(ARGV[a + 3]), retention}
    result = {}
    for b = a + 4, #ARGV, 6 do
      table.insert(result, fire_schedule(ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3],
        ARGV[b + 4], ARGV[b + 5], limits))
    end

  elseif op == 'dequeue' then
    -- queue, lease ('' for the default), the policy's lease, the worker ('' for none), '1' when
    -- a pusher asks ('' for a consumer), then a fresh lease id per task
    local queue = ARGV[a]
    local worker = ARGV[a + 3] ~= '' and ARGV[a + 3]
    -- the queue's settings in one read: whether it is pushed, its delivery limits and its own
    -- lease
    local is_paused, own_lease, cap, rate, pushed = unpack(redis.call('HMGET', k('qs', queue),
      'paused', 'lease_seconds', 'max_processing', 'rate_limit', 'push'))
    -- only pushers take from a push queue, and they take only from push queues
    if pushed and ARGV[a + 4] ~= '1' then return answer('!PUSHQUEUE ' .. queue) end
    if not pushed and ARGV[a + 4] == '1' then return answer({}) end
    -- a paused queue answers as an empty one: its tasks keep their places
    if is_paused == 'true' then return answer({}) end
    -- none given: the queue's setting, else the policy's
    local lease = tonumber(ARGV[a + 1]) or (own_lease and tonumber(own_lease))
      or tonumber(ARGV[a + 2])
    local wanted = #ARGV - (a + 4)
    if cap then
      wanted = math.min(wanted, tonumber(cap) - tonumber(redis.call('HGET', k('c', queue), 'processing') or 0))
    end
    local short = false
    if rate and wanted > 0 then
      rate = cjson.decode(rate)
      wanted, short = rate_allowance(queue, rate, wanted)
    end
    result = {}
    local taken = {}
    for i = a + 5, a + 4 + math.max(wanted, 0) do
      local id = pop(queue)
      if not id then break end
      move(id, queue, 'pending', 'processing')
      redis.call('HINCRBY', k('t', id), 'attempts', 1)
      if worker then
        redis.call('HSET', k('t', id), 'lease_id', ARGV[i], 'started_at', now_text,
          'lease_expires_at', num(now + lease), 'worker', worker)
        table.insert(taken, id)
      else
        redis.call('HSET', k('t', id), 'lease_id', ARGV[i], 'started_at', now_text,
          'lease_expires_at', num(now + lease))
      end
      due('leases', now + lease, id)
      local n, entry = note(id, 'delivered', ARGV[i], worker)
      -- its first delivery (the usual case): its history is this entry alone, not read back
      table.insert(result, task(id, n == 1 and {entry}))
    end
    if type(rate) == 'table' then note_deliveries(queue, rate, #result, short) end
    if #taken > 0 then
      saw(worker)
      redis.call('SADD', k('wh', worker), unpack(taken))
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

  elseif op == 'progress' then
    -- id, value (JSON text), lease_id: fenced as a heartbeat, the lease unchanged
    local id, value, lease_id = ARGV[a], ARGV[a + 1], ARGV[a + 2]
    local refused = leased(id, 'progress', lease_id)
    if refused then return answer(refused) end
    redis.call('HSET', k('t', id), 'progress', value)
    result = task(id)

  elseif op == 'complete' then
    local id, has_result, value, lease_id = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
    -- the first result stands
    if repeats_closing(id, 'complete', lease_id) then return answer(task(id)) end
    local refused, ended, worker, started = leased(id, 'complete', lease_id)
    if refused then return answer(refused) end
    close_lease(id, lease_id)
    if has_result == '1' then redis.call('HSET', k('t', id), 'result', value) end
    end_turn(id)
    finish(id, 'completed', retention, 'completed')
    let_go(id, worker, 'completed')
    local n, entry = note(id, 'completed', ended, worker)
    -- completed after its first delivery (the usual case): its history is that delivery, noted
    -- when it started under this lease, and this; not read back
    local history = n == 2 and {entry_text(started, 'delivered', ended, worker), entry}
    slot_freed(field(id, 'queue'))
    local dependents = field(id, 'dependents')
    if dependents then
      -- each dependent has one parent less to wait for; one with none left goes to its queue
      for _, child in ipairs(cjson.decode(dependents)) do
        if field(child, 'status') == 'waiting'
          and redis.call('HINCRBY', k('t', child), 'waiting_on', -1) <= 0 then
          schedule_or_append(child, 'waiting', tonumber(field(child, 'hold')) or 0)
          note(child, 'released')
        end
      end
    end
    result = task(id, history)

  elseif op == 'fail' then
    -- id, has_error, error, retry, lease_id, backoff base, retry_after ('' for none: the
    -- backoff)
    local id, has_error, message, retry, lease_id, base, retry_after =
      ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], tonumber(ARGV[a + 5]),
      tonumber(ARGV[a + 6])
    -- no second attempt counted, no second backoff
    if repeats_closing(id, 'fail', lease_id) then return answer(task(id)) end
    local refused, ended, worker = leased(id, 'fail', lease_id)
    if refused then return answer(refused) end
    close_lease(id, lease_id)
    clear_lease(id)
    redis.call('HDEL', k('t', id), 'started_at', 'error')
    if has_error == '1' then redis.call('HSET', k('t', id), 'error', message) end
    let_go(id, worker, 'failed')
    local attempts, max_attempts, queue, own_base =
      unpack(redis.call('HMGET', k('t', id), 'attempts', 'max_attempts', 'queue', 'backoff'))
    attempts = tonumber(attempts)
    if expired(id) then
      expire(id, retention)  -- never delivered again after its expiry
    elseif retry == '1' and attempts < tonumber(max_attempts) then
      local backoff
      if retry_after then
        -- the delay the failure asked for (a push receiver's Retry-After), within bounds
        backoff = math.min(math.max(retry_after, 0), MAX_BACKOFF)
      else
        -- the task's own base, fixed when it was enqueued, else the policy's
        base = tonumber(own_base) or base
        backoff = math.min(base * 2 ^ math.min(attempts - 1, 40), MAX_BACKOFF)
      end
      schedule_or_append(id, 'processing', backoff)
      note(id, 'failed', ended, worker, has_error == '1' and message or nil)
    else
      dead(id, retention, ended, worker)
    end
    slot_freed(queue)
    result = task(id)

  elseif op == 'release' then
    local id, lease_id = ARGV[a], ARGV[a + 1]
    local refused, _, worker = leased(id, 'release', lease_id)
    if refused then return answer(refused) end
    let_go(id, worker)  -- a release is no change of its own in the history
    if expired(id) then
      clear_lease(id)
      expire(id, retention)
    else
      put_back(id)
    end
    slot_freed(field(id, 'queue'))
    result = task(id)

  elseif op == 'retry' then
    local id = ARGV[a]
    local missing = known(id)
    if missing then return answer(missing) end
    local status = field(id, 'status')
    if status ~= 'failed' then return answer('!NOTFAILED ' .. status) end
    -- an operator's retry runs it however old it is: its expiry goes
    redis.call('HSET', k('t', id), 'attempts', 0)
    redis.call('HDEL', k('t', id), 'error', 'finished_at', 'forget_at', 'result', 'started_at',
      'expires_at', 'progress')
    redis.call('ZREM', k('ret'), id)
    redis.call('ZREM', k('exp'), id)
    append(id, 'failed')
    note(id, 'retried')
    result = task(id)

  elseif op == 'delete' then
    local id = ARGV[a]
    local missing = known(id)
    if missing then return answer(missing) end
    if field(id, 'status') == 'processing' then return answer('!PROCESSING') end
    remove_task(id, retention, true)
    result = 0

  elseif op == 'purge' then
    -- queue, status (pending, scheduled, completed or failed), limit: up to limit of them
    -- deleted, as delete does each; pending ones waiting behind a group's head go first
    local queue, status, limit = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
    local chosen = {}
    if status == 'pending' then
      chosen = redis.call('ZRANGE', k('gwq', queue), 0, limit - 1)
      for _, priority in ipairs(redis.call('ZRANGE', k('prios', queue), 0, -1)) do
        if #chosen >= limit then break end
        for _, id in ipairs(redis.call('ZRANGE', k('q', queue, priority), 0, limit - #chosen - 1)) do
          table.insert(chosen, id)
        end
      end
    else
      chosen = redis.call('ZREVRANGE', k('s', queue, status), 0, limit - 1)
    end
    for _, id in ipairs(chosen) do
      -- a dependent of one purged before it may have failed meanwhile: it goes all the same
      if redis.call('EXISTS', k('t', id)) == 1 then remove_task(id, retention, true) end
    end
    result = #chosen

  elseif op == 'get' then
    result = task(ARGV[a])

  elseif op == 'watch' then
    -- id, milliseconds: the task, and for that long its finishing is published (the longest
    -- of the waits on it wins); in the same step, so no finish falls between the two
    local id, ms = ARGV[a], tonumber(ARGV[a + 1])
    result = task(id)
    if result then
      local key = k('w', id)
      if redis.call('PTTL', key) < ms then redis.call('SET', key, '1', 'PX', ms) end
    end

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
    -- queue, limit, offset, 'pending': walk the priorities from the highest, then the tasks
    -- waiting behind their group's head; the page and the total
    local queue, limit, offset = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    local page = {}
    local runs = {}
    for _, priority in ipairs(redis.call('ZRANGE', k('prios', queue), 0, -1)) do
      table.insert(runs, k('q', queue, priority))
    end
    table.insert(runs, k('gwq', queue))
    for _, run in ipairs(runs) do
      if limit <= 0 then break end
      local size = redis.call('ZCARD', run)
      if offset >= size then
        offset = offset - size
      else
        for _, id in ipairs(redis.call('ZRANGE', run, offset, offset + limit - 1)) do
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
    local before = redis.call('HMGET', k('qs', queue), 'paused', 'max_processing', 'rate_limit',
      'push')
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
    local after = redis.call('HMGET', k('qs', queue), 'paused', 'max_processing', 'rate_limit',
      'push')
    if before[3] and not after[3] then
      redis.call('DEL', k('rl', queue), k('rc', queue))
      redis.call('ZREM', k('wake'), queue)
    end
    if delivers_more(before, after) then
      -- resumed or loosened: its pending tasks may go now, so parked consumers everywhere wake
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

  elseif op == 'feed_on' then
    -- events to keep, seconds: record changes in the feed for that long (refreshed by the
    -- servers reading it), from this call on
    local kept = tonumber(ARGV[a])
    redis.call('SET', k('feed_on'), kept, 'EX', tonumber(ARGV[a + 1]))
    feeds[P] = {kept, FEED_RECHECK}
    result = 0

  elseif op == 'saw_worker' then
    -- worker: it is seen now
    saw(ARGV[a])
    result = 0

  elseif op == 'workers' then
    -- seconds: per worker seen in the last so many seconds, the latest first: its name, when
    -- it was last seen, the tasks it holds, its completed and failed counts. Those seen longer
    -- ago that hold nothing are forgotten.
    local since = now - tonumber(ARGV[a])
    for _, worker in ipairs(redis.call('ZRANGEBYSCORE', k('workers'), '-inf', '(' .. num(since))) do
      if redis.call('EXISTS', k('wh', worker)) == 0 then
        redis.call('ZREM', k('workers'), worker)
        redis.call('DEL', k('wk', worker))
      end
    end
    result = {}
    local seen = redis.call('ZREVRANGEBYSCORE', k('workers'), '+inf', num(since), 'WITHSCORES')
    for i = 1, #seen, 2 do
      local worker = seen[i]
      local completed, failed = unpack(redis.call('HMGET', k('wk', worker), 'completed',
        'failed'))
      table.insert(result, {worker, seen[i + 1], redis.call('SMEMBERS', k('wh', worker)),
        completed or 0, failed or 0})
    end

  elseif op == 'deadline' then
    -- what makes tasks ready by time alone: a lease running out, a delay or backoff ending, a
    -- rate window opening
    result = {}
    for _, name in ipairs({'leases', 'sched', 'wake'}) do
      local first = redis.call('ZRANGE', k(name), 0, 0, 'WITHSCORES')
      table.insert(result, first[2] or false)
    end

  else
    return redis.error_reply('UNKNOWN operation ' .. op)
  end

  return answer(result)
end
