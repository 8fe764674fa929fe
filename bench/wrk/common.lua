-- Shared by every workload script (loaded with dofile from the script's own directory).
--
-- wrk runs one Lua state per thread: the globals below are per-thread counters that each
-- workload's response() updates, and done() (which runs in the main state after the run) sums
-- them over threads with thread:get. done() prints ONE line, "BENCH_JSON {...}", that
-- bench/http_bench.py parses: wrk's own summary has no tasks count and rounds latencies.

tasks = 0       -- tasks this thread saw enqueued (workloads that only enqueue) or completed
unexpected = 0  -- responses with another status or shape than the workload expects
empty = 0       -- dequeues that found the queue empty (404 or an empty list): prefill too small

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Count a response whose status is not `wanted`; true when it is.
function expect(status, wanted)
  if status == wanted then
    return true
  end
  unexpected = unexpected + 1
  return false
end

-- Headers for requests a script formats itself. wrk sets the Host header only in wrk.init (the
-- script's top level runs before it), so scripts build their requests in prepare(), which
-- init() calls once the Host is known.
JSON_HEADERS = { ["Content-Type"] = "application/json" }
PLAIN_HEADERS = {}

function init(args)
  JSON_HEADERS["Host"] = wrk.headers["Host"]
  PLAIN_HEADERS["Host"] = wrk.headers["Host"]
  if prepare then
    prepare()
  end
end

function done(summary, latency, requests)
  local total_tasks, total_unexpected, total_empty = 0, 0, 0
  for _, thread in ipairs(threads) do
    total_tasks = total_tasks + thread:get("tasks")
    total_unexpected = total_unexpected + thread:get("unexpected")
    total_empty = total_empty + thread:get("empty")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"unexpected":%d,"empty":%d,"tasks":%d,' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"mean":%.1f,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    total_unexpected, total_empty, total_tasks,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
