// tornado_queue dashboard: reads the JSON API and draws what it reads, again whenever the
// server's event stream (GET /events, read by sse.js) reports a change to what is shown, and
// every second by polling instead when the server has no stream or it keeps failing.
//
// Two settings in the page's query, for slow links and tests: ?poll=MS, how often it polls
// without a stream (1000), and ?refresh=MS, how often it reads everything anyway while the
// stream is open (5000), for what no event reports: settings, schedules, throughput.
//
// Every task field (payload, error, even the id) comes from whoever enqueued it, so text only
// ever reaches the page through textContent and DOM properties, never parsed as HTML.
"use strict";

(() => {
  // A whole number of milliseconds from the page's query (?name=MS), else `fallback`.
  function intervalSetting(name, fallback) {
    const value = Number(new URLSearchParams(location.search).get(name) ?? "");
    return Number.isInteger(value) && value >= 250 && value <= 3600000 ? value : fallback;
  }

  const POLL_MS = intervalSetting("poll", 1000); // without the event stream
  const LIVE_REFRESH_MS = intervalSetting("refresh", 5000); // with it
  const EVENT_REFRESH_MS = 300; // events redraw at most this often: a burst is one redraw
  const SAMPLE_MS = 1000; // throughput samples at most this often
  const REQUEST_TIMEOUT_MS = 5000;
  const HISTORY_MS = 5 * 60 * 1000;
  const RATE_WINDOW_MS = 5000; // the headline rates average the last few seconds
  // Samples further apart than this break the chart's lines: twice the longest interval.
  const GAP_MS = 2 * Math.max(POLL_MS, LIVE_REFRESH_MS);
  const HEAD_LIMIT = 5; // pending tasks shown per queue
  const LIST_LIMIT = 10; // processing / failed tasks shown per queue
  const MAX_DETAIL_QUEUES = 20; // bounds the requests one poll makes
  const PAYLOAD_CHARS = 160;
  const PAGE_SIZE = 20; // tasks per page of a queue page's list
  const STATES = ["pending", "scheduled", "waiting", "processing", "completed", "failed"];
  const PARENTS_SHOWN = 3; // parents linked per row of a waiting list; the task page has all
  const WORKER_TASKS_SHOWN = 8; // tasks linked per worker; the rest are counted
  const SERIES = ["enqueued", "completed", "failed"];
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (selector) => document.querySelector(selector);

  // --- talking to the server -------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
      this.detail = detail;
    }
  }

  class Unreachable extends Error {}

  // Server clock minus browser clock, from the Date header: lease countdowns are the server's
  // deadlines, so a browser whose clock is off would count them down wrongly.
  let clockOffsetMs = 0;

  function noteServerClock(response) {
    const date = Date.parse(response.headers.get("Date") || "");
    if (Number.isNaN(date)) return;
    const offset = date - Date.now();
    // The header has whole seconds only: ignore differences it cannot resolve.
    clockOffsetMs = Math.abs(offset) > 1500 ? offset : 0;
  }

  function serverNow() {
    return Date.now() + clockOffsetMs;
  }

  async function problemDetail(response) {
    try {
      const problem = await response.json();
      if (problem && typeof problem.detail === "string") return problem.detail;
    } catch (_) {
      // not problem JSON: fall back to the status line
    }
    return `HTTP ${response.status} ${response.statusText}`.trim();
  }

  // --- the bearer token --------------------------------------------------------------------

  // Kept in sessionStorage only: it lives as long as this tab, never on disk in localStorage
  // or a cookie, and it is never written into the page.
  const TOKEN_KEY = "tornado_queue.token";

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (_) {
      return null; // storage disabled: the page works without auth only
    }
  }

  function keepToken(token) {
    try {
      if (token === null) sessionStorage.removeItem(TOKEN_KEY);
      else sessionStorage.setItem(TOKEN_KEY, token);
    } catch (_) {
      // storage disabled: nothing to keep or forget
    }
    $("#forget-token").hidden = storedToken() === null;
  }

  // True while the form waits for a token: polling stops rather than knock every second.
  let waitingForToken = false;

  function isAuthError(error) {
    return error instanceof ApiError && (error.status === 401 || error.status === 403);
  }

  function askForToken(error) {
    const reason =
      error.status === 403
        ? `This token may not read the queues (${error.detail}). Enter an admin token.`
        : storedToken() === null
          ? "The server answered 401: its queues need a bearer token."
          : "The server refused the saved token. Enter another.";
    setText($("#token-reason"), reason);
    const form = $("#token-form");
    waitingForToken = true;
    if (form.hidden) {
      form.hidden = false;
      $("#token-input").focus();
    }
  }

  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("#token-input");
    const token = input.value.trim();
    if (!token) return;
    keepToken(token);
    input.value = "";
    $("#token-form").hidden = true;
    waitingForToken = false;
    pollSoon();
    openStream(); // with the new token
  });

  $("#forget-token").addEventListener("click", () => {
    keepToken(null);
    showNotice("The token was forgotten.", "ok");
    pollSoon();
    openStream();
  });

  function authHeaders() {
    const token = storedToken();
    return token === null ? {} : { Authorization: `Bearer ${token}` };
  }

  // Every request goes through here, with the bearer token when the tab holds one.
  async function api(method, path, body) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    const headers = { Accept: "application/json", ...authHeaders() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    try {
      let response;
      try {
        response = await fetch(path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          cache: "no-store",
          signal: controller.signal,
        });
      } catch (error) {
        const why = error.name === "AbortError" ? "no answer within 5 s" : "connection failed";
        throw new Unreachable(why);
      }
      noteServerClock(response);
      if (!response.ok) throw new ApiError(response.status, await problemDetail(response));
      const total = Number.parseInt(response.headers.get("X-Total-Count") || "", 10);
      let data = null;
      if (response.status !== 204) {
        try {
          data = await response.json();
        } catch (_) {
          throw new Unreachable("the answer was cut off");
        }
      }
      return { data, total: Number.isNaN(total) ? null : total };
    } finally {
      clearTimeout(timer);
    }
  }

  // --- small DOM helpers -----------------------------------------------------------------

  function cell(text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }

  function shortId(id) {
    return String(id).slice(0, 8);
  }

  function payloadText(payload) {
    const text = JSON.stringify(payload);
    return text.length > PAYLOAD_CHARS ? `${text.slice(0, PAYLOAD_CHARS)}…` : text;
  }

  function setText(element, text) {
    if (element.textContent !== text) element.textContent = text;
  }

  function formatDuration(ms) {
    const seconds = Math.max(0, Math.floor(ms / 1000));
    if (seconds < 60) return `${seconds}s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes}m ${String(seconds % 60).padStart(2, "0")}s`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours}h ${String(minutes % 60).padStart(2, "0")}m`;
    return `${Math.floor(hours / 24)}d`;
  }

  function formatRate(perSecond) {
    if (perSecond === null) return "–";
    if (perSecond >= 100) return perSecond.toFixed(0);
    return perSecond.toFixed(1);
  }

  function timeMs(iso) {
    const ms = Date.parse(iso || "");
    return Number.isNaN(ms) ? null : ms;
  }

  // A cell that tick() keeps current: a countdown to a deadline, the time since an instant,
  // (kind "relative") either, for an instant that may be past or to come, or (kind "next") the
  // time to an instant that is due once past.
  function clockCell(kind, atMs, className) {
    const td = cell("", className);
    setClock(td, kind, atMs);
    return td;
  }

  function setClock(element, kind, atMs) {
    element.dataset.clock = kind;
    element.dataset.at = String(atMs);
    updateClock(element);
  }

  function updateClock(element) {
    const at = Number(element.dataset.at);
    if (element.dataset.at === "" || Number.isNaN(at)) {
      setText(element, "–");
      return;
    }
    const left = at - serverNow();
    if (element.dataset.clock === "until") {
      element.classList.toggle("overdue", left <= 0);
      setText(element, left <= 0 ? "expired" : formatDuration(left));
    } else if (element.dataset.clock === "next" && left <= 0) {
      setText(element, "due now"); // a schedule's next run, fired at the next poll's latest
    } else if ((element.dataset.clock === "relative" || element.dataset.clock === "next") && left > 0) {
      setText(element, `in ${formatDuration(left)}`);
    } else {
      setText(element, `${formatDuration(-left)} ago`);
    }
  }

  function tick() {
    for (const element of document.querySelectorAll("[data-clock]")) updateClock(element);
  }

  // Update `tbody` to hold one row per item, in order, reusing the rows of items it already
  // shows: a row (and a button in it) is not rebuilt under the user's pointer every second.
  function syncRows(tbody, items, keyOf, build, update) {
    const existing = new Map();
    for (const row of tbody.rows) existing.set(row.dataset.key, row);
    items.forEach((item, index) => {
      const key = keyOf(item);
      let row = existing.get(key);
      if (row) {
        existing.delete(key);
      } else {
        row = build(item);
        row.dataset.key = key;
      }
      update(row, item);
      if (tbody.rows[index] !== row) tbody.insertBefore(row, tbody.rows[index] || null);
    });
    for (const row of existing.values()) row.remove();
  }

  // --- the queues table ------------------------------------------------------------------

  function renderQueues(queues, settings) {
    const tbody = $("#queues tbody");
    syncRows(
      tbody,
      queues,
      (queue) => queue.name,
      (queue) => {
        const row = document.createElement("tr");
        row.dataset.queue = queue.name;
        const name = document.createElement("th");
        name.scope = "row";
        name.append(queueLink(queue.name));
        const badge = document.createElement("span");
        badge.className = "paused-badge";
        badge.textContent = "paused";
        badge.hidden = true;
        // A push queue: the server POSTs its tasks to a URL, no consumer dequeues them.
        const push = document.createElement("span");
        push.className = "push-badge";
        push.textContent = "push";
        push.hidden = true;
        name.append(" ", badge, " ", push);
        row.append(name);
        for (const state of STATES) {
          const td = cell("", "num");
          td.dataset.state = state;
          row.append(td);
        }
        const retryAll = document.createElement("button");
        retryAll.type = "button";
        retryAll.className = "retry-all";
        retryAll.textContent = "Retry failed";
        retryAll.addEventListener("click", () => retryQueue(retryAll, queue.name));
        const pause = document.createElement("button");
        pause.type = "button";
        pause.className = "pause";
        pause.hidden = true; // shown once the queue's settings are known
        pause.addEventListener("click", () => togglePause(pause, queue.name));
        const actions = document.createElement("td");
        const group = document.createElement("div");
        group.className = "actions";
        group.append(pause, retryAll);
        actions.append(group);
        row.append(actions);
        return row;
      },
      (row, queue) => {
        fillCounts(row, queue);
        const retryAll = row.querySelector(".retry-all");
        retryAll.hidden = queue.failed === 0;
        retryAll.dataset.failed = String(queue.failed);
        const known = settings.get(queue.name);
        const paused = Boolean(known && known.paused);
        const pause = row.querySelector(".pause");
        pause.hidden = known === undefined; // a server without queue settings, or a later queue
        pause.dataset.paused = String(paused);
        setText(pause, paused ? "Resume" : "Pause");
        row.querySelector(".paused-badge").hidden = !paused;
        row.classList.toggle("paused", paused);
        // From the settings the overview reads anyway (the first MAX_DETAIL_QUEUES queues):
        // marking push costs no request of its own.
        const target = known ? known.push ?? null : null;
        const push = row.querySelector(".push-badge");
        push.hidden = target === null;
        push.title = target === null ? "" : `Pushed to ${target.url}`;
      },
    );
    const totals = Object.fromEntries(STATES.map((state) => [state, 0]));
    for (const queue of queues) for (const state of STATES) totals[state] += queue[state];
    fillCounts($("#queues tfoot tr"), totals);
    $("#queues-empty").hidden = queues.length > 0;
    const note = $("#queues-note");
    note.hidden = queues.length <= MAX_DETAIL_QUEUES;
    note.textContent = `Task lists below cover the first ${MAX_DETAIL_QUEUES} of ${queues.length} queues.`;
  }

  function fillCounts(row, counts) {
    for (const td of row.querySelectorAll("td[data-state]")) {
      const value = counts[td.dataset.state] ?? 0;
      setText(td, String(value));
      td.classList.toggle("zero", value === 0);
    }
  }

  // --- the task tables -------------------------------------------------------------------

  // The task's short id, a link to its page.
  function taskIdCell(task) {
    const link = document.createElement("a");
    link.href = taskHash(task.id);
    link.textContent = shortId(task.id);
    link.title = task.id;
    const td = cell("", "mono");
    td.append(link);
    return td;
  }

  // A link to a task's page: its short id, the whole id as its title (or as its text).
  function taskLink(id, whole) {
    const link = document.createElement("a");
    link.href = taskHash(id);
    link.textContent = whole ? String(id) : shortId(id);
    link.title = String(id);
    return link;
  }

  // The parents a waiting task waits for (its `after`), each a link to its page.
  function parentsCell(task) {
    const td = cell("", "mono parents");
    const parents = task.after || [];
    parents.slice(0, PARENTS_SHOWN).forEach((id, index) => {
      if (index > 0) td.append(", ");
      td.append(taskLink(id));
    });
    if (parents.length > PARENTS_SHOWN) {
      const more = document.createElement("a");
      more.href = taskHash(task.id);
      more.className = "more";
      more.textContent = `+${parents.length - PARENTS_SHOWN} more`;
      td.append(" ", more);
    }
    if (parents.length === 0) td.textContent = "–";
    return td;
  }

  function queueLink(name, state) {
    const link = document.createElement("a");
    link.href = queueHash(name, state);
    link.textContent = name;
    return link;
  }

  function payloadCell(task) {
    const text = JSON.stringify(task.payload);
    const td = cell(payloadText(task.payload), "payload mono");
    td.title = text;
    return td;
  }

  function buildPending(task) {
    const row = document.createElement("tr");
    row.dataset.taskId = task.id;
    row.append(
      cell(task.queue),
      taskIdCell(task),
      cell(String(task.priority), "num"),
      cell(String(task.attempts), "num"),
      clockCell("since", timeMs(task.created_at) ?? "", "age"),
      payloadCell(task),
    );
    return row;
  }

  function buildProcessing(task) {
    const row = document.createElement("tr");
    row.dataset.taskId = task.id;
    row.append(
      cell(task.queue),
      taskIdCell(task),
      attemptsCell(task),
      clockCell("since", timeMs(task.started_at) ?? "", "age"),
      clockCell("until", "", "countdown"),
      payloadCell(task),
    );
    return row;
  }

  function updateProcessing(row, task) {
    // A heartbeat moves the deadline; the countdown cell then counts to the new one.
    const countdown = row.querySelector(".countdown");
    countdown.dataset.at = String(timeMs(task.lease_expires_at) ?? "");
    updateClock(countdown);
  }

  function errorCell(task) {
    const td = cell(task.error ?? "–", "error-text");
    td.title = task.error ?? "";
    return td;
  }

  function attemptsCell(task) {
    return cell(`${task.attempts} of ${task.max_attempts}`, "num");
  }

  // A failed task's Retry and Delete buttons.
  function failedActionsCell(task) {
    const retry = makeButton("Retry");
    retry.addEventListener("click", () => retryTask(retry, task));
    const remove = makeButton("Delete", "danger");
    remove.addEventListener("click", () => deleteTask(remove, task));
    const actions = document.createElement("td");
    const group = document.createElement("div");
    group.className = "actions";
    group.append(retry, remove);
    actions.append(group);
    return actions;
  }

  function makeButton(text, className) {
    const element = document.createElement("button");
    element.type = "button";
    element.textContent = text;
    if (className) element.className = className;
    return element;
  }

  function buildFailed(task) {
    const row = document.createElement("tr");
    row.dataset.taskId = task.id;
    row.append(
      cell(task.queue),
      taskIdCell(task),
      attemptsCell(task),
      errorCell(task),
      clockCell("since", timeMs(task.finished_at) ?? "", "age"),
      payloadCell(task),
      failedActionsCell(task),
    );
    return row;
  }

  function renderTasks(state, lists, build, update) {
    const tasks = lists.flatMap((list) => list.tasks);
    syncRows($(`#${state} tbody`), tasks, (task) => task.id, build, update || (() => {}));
    $(`[data-empty-for="${state}"]`).hidden = tasks.length > 0;
    $(`[data-table-for="${state}"]`).hidden = tasks.length === 0;
    const total = lists.reduce((sum, list) => sum + list.total, 0);
    const count = $(`#${state}-count`);
    count.textContent = tasks.length < total ? `${tasks.length} shown of ${total}` : "";
  }

  // --- the retry and delete buttons ------------------------------------------------------

  let noticeTimer = null;

  function showNotice(text, kind) {
    const notice = $("#notice");
    notice.textContent = text;
    notice.dataset.kind = kind;
    notice.setAttribute("role", kind === "error" ? "alert" : "status");
    notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => {
      notice.hidden = true;
    }, 10000);
  }

  // A refused or unsent action: the server's detail (or why it was not reached), and the
  // token form when the token was the problem.
  function showFailure(action, error) {
    const why = error instanceof ApiError ? error.detail : `the server is unreachable (${error.message})`;
    showNotice(`${action} failed: ${why}`, "error");
    if (isAuthError(error)) askForToken(error);
  }

  // One task's Retry or Delete; true when the server did it.
  async function act(button, method, path, verb, task) {
    button.disabled = true;
    try {
      await api(method, path);
      const done = verb === "Retry" ? "is pending again" : "was deleted";
      showNotice(`Task ${task.id} (${task.queue}) ${done}.`, "ok");
      pollSoon();
      return true;
    } catch (error) {
      showFailure(`${verb} of task ${task.id}`, error);
      button.disabled = false;
      return false;
    }
  }

  function retryTask(button, task) {
    return act(button, "POST", `/tasks/${encodeURIComponent(task.id)}/retry`, "Retry", task);
  }

  async function deleteTask(button, task) {
    const dependents = task.dependents && task.dependents.length
      ? " Tasks still waiting for it fail with it."
      : "";
    if (!window.confirm(`Delete task ${task.id} for good?${dependents}`)) return false;
    return act(button, "DELETE", `/tasks/${encodeURIComponent(task.id)}`, "Delete", task);
  }

  async function togglePause(button, queue) {
    const pausing = button.dataset.paused !== "true";
    const question = `Pause queue ${queue}? It keeps taking tasks but delivers none until it is resumed.`;
    if (pausing && !window.confirm(question)) return;
    button.disabled = true;
    try {
      await api("PATCH", `/queues/${encodeURIComponent(queue)}`, { paused: pausing ? true : null });
      showNotice(`Queue ${queue} is ${pausing ? "paused" : "delivering again"}.`, "ok");
      pollSoon();
    } catch (error) {
      showFailure(`${pausing ? "Pausing" : "Resuming"} queue ${queue}`, error);
    } finally {
      button.disabled = false;
    }
  }

  async function retryQueue(button, queue) {
    const failed = button.dataset.failed;
    if (!window.confirm(`Put all ${failed} failed tasks of queue ${queue} back to pending?`)) return;
    button.disabled = true;
    try {
      const { data } = await api("POST", `/queues/${encodeURIComponent(queue)}/retry`);
      const plural = data.retried === 1 ? "task is" : "tasks are";
      showNotice(`${data.retried} failed ${plural} pending again in queue ${queue}.`, "ok");
      pollSoon();
    } catch (error) {
      showFailure(`Retry of queue ${queue}`, error);
    } finally {
      button.disabled = false;
    }
  }

  // --- throughput ------------------------------------------------------------------------

  // Cumulative counters from GET /queue/totals, one sample a poll, the last 5 minutes kept.
  const samples = [];

  function addSample(totals) {
    const now = performance.now();
    samples.push({ t: now, ...totals });
    // Keep one sample older than the window, so the oldest rate in it can still be computed.
    while (samples.length > 2 && samples[1].t < now - HISTORY_MS) samples.shift();
  }

  // Per-second rates between successive samples; null where there is a gap or the counters
  // went back (a restarted server), so the chart breaks its lines there.
  function rates() {
    const points = [];
    for (let i = 1; i < samples.length; i += 1) {
      const before = samples[i - 1];
      const after = samples[i];
      const seconds = (after.t - before.t) / 1000;
      const reset = SERIES.some((name) => after[name] < before[name]);
      const point = { t: after.t };
      for (const name of SERIES) {
        point[name] = seconds <= 0 || reset || after.t - before.t > GAP_MS
          ? null
          : (after[name] - before[name]) / seconds;
      }
      points.push(point);
    }
    return points;
  }

  function recentRate(name) {
    const last = samples[samples.length - 1];
    if (!last) return null;
    // The newest sample at least RATE_WINDOW_MS older than the last one, or the oldest.
    let first = null;
    for (let i = samples.length - 2; i >= 0; i -= 1) {
      const sample = samples[i];
      if (sample[name] > last[name] || last.t - sample.t > HISTORY_MS) break;
      first = sample;
      if (last.t - sample.t >= RATE_WINDOW_MS) break;
    }
    if (!first) return null;
    return (last[name] - first[name]) / ((last.t - first.t) / 1000);
  }

  function niceCeiling(value) {
    if (value <= 1) return 1;
    const magnitude = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (value <= step * magnitude) return step * magnitude;
    }
    return 10 * magnitude;
  }

  function svg(name, attributes, text) {
    const element = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
    if (text !== undefined) element.textContent = text;
    return element;
  }

  // The x axis spans the history the page has, from 30 seconds up to 5 minutes: a page opened
  // a few seconds ago shows its first samples across the chart, not squeezed to the right edge.
  function chartSpanMs(now) {
    const oldest = samples.length ? now - samples[0].t : 0;
    return Math.min(HISTORY_MS, Math.max(30000, Math.ceil(oldest / 30000) * 30000));
  }

  function tickStepMs(span) {
    if (span <= 30000) return 10000;
    if (span <= 60000) return 15000;
    if (span <= 120000) return 30000;
    return 60000;
  }

  function formatAgo(ms) {
    if (ms >= 60000 && ms % 60000 === 0) return `−${ms / 60000}m`;
    return ms >= 60000 ? `−${Math.floor(ms / 60000)}m${(ms % 60000) / 1000}s` : `−${ms / 1000}s`;
  }

  function renderChart() {
    const chart = $("#chart");
    // Drawn at the chart's own width, so labels keep their size on a narrow window.
    const width = Math.max(280, Math.round(chart.getBoundingClientRect().width) || 640);
    const height = 180;
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const [left, right, top, bottom] = [48, 10, 8, 22];
    const plotWidth = width - left - right;
    const plotHeight = height - top - bottom;
    const now = performance.now();
    const span = chartSpanMs(now);
    const points = rates().filter((point) => now - point.t <= span);
    let peak = 0;
    for (const point of points) {
      for (const name of SERIES) if (point[name] !== null) peak = Math.max(peak, point[name]);
    }
    const yMax = niceCeiling(peak);
    const x = (t) => left + plotWidth * (1 - (now - t) / span);
    const y = (value) => top + plotHeight * (1 - value / yMax);

    const parts = [];
    for (const fraction of [0, 0.5, 1]) {
      const value = yMax * fraction;
      const label = Number.isInteger(value) ? String(value) : value.toFixed(1);
      parts.push(
        svg("line", { class: "grid", x1: left, x2: width - right, y1: y(value), y2: y(value) }),
        svg("text", { class: "axis-label", x: left - 6, y: y(value) + 4, "text-anchor": "end" }, `${label}/s`),
      );
    }
    const step = tickStepMs(span);
    for (let ago = 0; ago <= span; ago += step) {
      const anchor = ago === span ? "start" : ago === 0 ? "end" : "middle";
      const label = ago === 0 ? "now" : formatAgo(ago);
      parts.push(svg("text", { class: "axis-label", x: x(now - ago), y: height - 6, "text-anchor": anchor }, label));
    }
    for (const name of SERIES) {
      let path = "";
      let drawing = false;
      for (const point of points) {
        if (point[name] === null) {
          drawing = false;
          continue;
        }
        path += `${drawing ? "L" : "M"}${x(point.t).toFixed(1)} ${y(point[name]).toFixed(1)} `;
        drawing = true;
      }
      if (path) parts.push(svg("path", { class: `line ${name}`, d: path.trim() }));
    }
    chart.replaceChildren(...parts);
  }

  function renderThroughput(totals) {
    if (totals === null) {
      for (const name of SERIES) setText($(`#rate-${name}`), "–");
      setText($("#totals"), "This server has no GET /queue/totals, so throughput is not shown.");
      $("#chart").replaceChildren();
      $("#chart").classList.add("absent");
      return;
    }
    $("#chart").classList.remove("absent");
    addSample(totals);
    for (const name of SERIES) setText($(`#rate-${name}`), formatRate(recentRate(name)));
    setText(
      $("#totals"),
      `Since the server started: ${totals.enqueued} enqueued · ${totals.completed} completed · ` +
        `${totals.failed} failed · ${totals.lease_expired} leases expired`,
    );
    renderChart();
  }

  // --- routing: #/ the overview, #/queues/NAME?state=&offset= a queue, #/tasks/ID a task ---
  //
  // #/schedules is the schedules view, #/workers the workers'.
  //
  // The view lives in the hash: the server serves one page, and the browser's back button
  // walks between views. Changing a queue page's tab or page replaces the history entry
  // rather than adding one, so back still returns to where the user came from.

  const OVERVIEW_TITLE = document.title;

  function queueHash(name, state, offset) {
    const params = new URLSearchParams();
    if (state && state !== "pending") params.set("state", state);
    if (offset) params.set("offset", String(offset));
    const query = params.toString();
    return `#/queues/${encodeURIComponent(name)}${query ? `?${query}` : ""}`;
  }

  function taskHash(id) {
    return `#/tasks/${encodeURIComponent(id)}`;
  }

  function parseRoute(hash) {
    const [path, query = ""] = hash.replace(/^#/, "").split("?");
    const [kind, encoded, ...rest] = path.split("/").filter(Boolean);
    let name = "";
    try {
      name = rest.length === 0 && encoded ? decodeURIComponent(encoded) : "";
    } catch (_) {
      // a malformed escape: not a route, show the overview
    }
    if (kind === "queues" && name) {
      const params = new URLSearchParams(query);
      const state = STATES.includes(params.get("state")) ? params.get("state") : "pending";
      const offset = Math.max(0, Number.parseInt(params.get("offset") || "0", 10) || 0);
      return { view: "queue", name, state, offset };
    }
    if (kind === "tasks" && name) return { view: "task", id: name };
    if (kind === "schedules" && !encoded) return { view: "schedules" };
    if (kind === "workers" && !encoded) return { view: "workers" };
    return { view: "overview" };
  }

  function currentRoute() {
    return parseRoute(location.hash);
  }

  // False once the user has moved on: an answer that arrives late is not drawn.
  function isCurrent(route) {
    return JSON.stringify(route) === JSON.stringify(currentRoute());
  }

  function showRoute() {
    const route = currentRoute();
    for (const view of document.querySelectorAll("main[data-view]")) {
      view.hidden = view.dataset.view !== route.view;
    }
    for (const link of document.querySelectorAll("nav.views [data-nav]")) {
      if (link.dataset.nav === route.view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (route.view !== "queue") forgetSecret(); // a rotated secret is shown once only
    if (route.view === "queue") openQueuePage(route);
    else if (route.view === "task") openTaskPage(route);
    else if (route.view === "schedules") document.title = "Schedules · tornado_queue";
    else if (route.view === "workers") document.title = "Workers · tornado_queue";
    else document.title = OVERVIEW_TITLE;
  }

  function replaceRoute(hash) {
    history.replaceState(null, "", hash);
    showRoute();
    pollSoon();
  }

  window.addEventListener("hashchange", () => {
    showRoute();
    // Start keyboard and screen reader users at the new view's heading.
    const heading = document.querySelector("main:not([hidden]) h2[tabindex]");
    if (heading) heading.focus({ preventScroll: true });
    window.scrollTo(0, 0);
    if (!waitingForToken) pollSoon();
  });

  // A 400 or 404 about what the view asks for (a bad queue name, a task that is gone): said in
  // the view itself, while the connection stays live.
  function isRefusal(error) {
    return error instanceof ApiError && (error.status === 400 || error.status === 404);
  }

  function showViewProblem(element, text) {
    setText(element, text);
    element.hidden = false;
  }

  // A setting's seconds in the largest unit that keeps them whole: 90 s, 5 min, 24 h, 7 d.
  function secondsText(seconds) {
    const units = [
      [86400, "d", 2 * 86400], // days only from two of them on: "24 h" reads better than "1 d"
      [3600, "h", 3600],
      [60, "min", 60],
    ];
    for (const [size, unit, from] of units) {
      if (seconds >= from && seconds % size === 0) return `${seconds / size} ${unit}`;
    }
    return `${seconds} s`;
  }

  // --- a queue's page --------------------------------------------------------------------

  // What the queue page shows, kept between polls.
  const queuePage = {
    name: null, // the queue shown
    state: null, // the tab whose columns the list's rows are built with
    settings: null, // the settings last read from the server
    filled: {}, // the form's texts when it was last filled: what the user has not changed
    saves: 0, // counts saved forms: a poll sent before a save does not draw the old settings
  };

  function groupCell(task) {
    return cell(task.group ?? "–", "mono");
  }

  function resultCell(task) {
    const td = cell(payloadText(task.result), "payload mono");
    td.title = JSON.stringify(task.result);
    return td;
  }

  // Cell builders for one field of a task: a number, or the time since an instant.
  const numberCell = (field) => (task) => cell(String(task[field]), "num");
  const sinceCell = (field) => (task) => clockCell("since", timeMs(task[field]) ?? "", "age");

  // The list's columns for each state: [heading, the cell for a task, heading class].
  const LIST_COLUMNS = {
    pending: [
      ["Task", taskIdCell],
      ["Priority", numberCell("priority"), "num"],
      ["Attempts", numberCell("attempts"), "num"],
      ["Group", groupCell],
      ["Waiting", sinceCell("created_at")],
      ["Payload", payloadCell],
    ],
    waiting: [
      ["Task", taskIdCell],
      ["Waits for", parentsCell],
      ["Group", groupCell],
      ["Waiting since", sinceCell("created_at")],
      ["Payload", payloadCell],
    ],
    scheduled: [
      ["Task", taskIdCell],
      ["Priority", numberCell("priority"), "num"],
      ["Attempts", numberCell("attempts"), "num"], // a retry waiting out its backoff
      ["Group", groupCell],
      ["Due", (task) => clockCell("relative", timeMs(task.available_at) ?? "", "age")],
      ["Payload", payloadCell],
    ],
    processing: [
      ["Task", taskIdCell],
      ["Attempt", attemptsCell, "num"],
      ["Group", groupCell],
      ["Started", sinceCell("started_at")],
      ["Lease expires in", () => clockCell("until", "", "countdown")], // set by updateProcessing
      ["Payload", payloadCell],
    ],
    completed: [
      ["Task", taskIdCell],
      ["Attempts", attemptsCell, "num"],
      ["Group", groupCell],
      ["Finished", sinceCell("finished_at")],
      ["Result", resultCell],
      ["Payload", payloadCell],
    ],
    failed: [
      ["Task", taskIdCell],
      ["Attempts", attemptsCell, "num"],
      ["Error", errorCell],
      ["Failed", sinceCell("finished_at")],
      ["Payload", payloadCell],
      ["Actions", failedActionsCell, "visually-hidden"],
    ],
  };

  function openQueuePage(route) {
    document.title = `${route.name} · tornado_queue`;
    if (queuePage.name !== route.name) {
      queuePage.name = route.name;
      queuePage.settings = null;
      queuePage.state = null;
      setText($("#queue-name"), route.name);
      clearQueueHead();
      fillSettingsForm(null); // the first poll fills it with this queue's settings
    }
    selectTab(route.state);
  }

  // Another queue's page: nothing of the one shown before stays until the first answer.
  function clearQueueHead() {
    $("#queue-problem").hidden = true;
    $("#queue-paused-badge").hidden = true;
    $("#queue-push-badge").hidden = true;
    $("#push-card").hidden = true;
    renderPushStatus(null); // until this queue's first answer
    forgetSecret();
    $("#queue-retry").hidden = true;
    $("#queue-purge").hidden = true;
    for (const count of document.querySelectorAll("#queue-tabs [data-count]")) setText(count, "–");
    const limits = $("#queue-limits");
    delete limits.dataset.signature;
    limits.replaceChildren();
  }

  function selectTab(state) {
    for (const tab of document.querySelectorAll("#queue-tabs [role=tab]")) {
      const selected = tab.dataset.state === state;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
    }
    $("#queue-list").setAttribute("aria-labelledby", `tab-${state}`);
    if (queuePage.state === state) return;
    // Another state has other columns: the rows shown so far cannot be reused.
    queuePage.state = state;
    const headings = LIST_COLUMNS[state].map(([title, , className]) => {
      const th = document.createElement("th");
      th.scope = "col";
      if (className === "visually-hidden") {
        // Named for screen readers; the column's buttons say what they do.
        const hidden = document.createElement("span");
        hidden.className = className;
        hidden.textContent = title;
        th.append(hidden);
      } else {
        th.textContent = title;
        if (className) th.className = className;
      }
      return th;
    });
    $("#queue-tasks thead tr").replaceChildren(...headings);
    $("#queue-tasks tbody").replaceChildren();
    setText($("#queue-tasks-empty"), `No ${state} tasks.`);
    setText($("#queue-range"), "");
  }

  function buildListRow(task) {
    const row = document.createElement("tr");
    row.dataset.taskId = task.id;
    row.append(...LIST_COLUMNS[queuePage.state].map(([, build]) => build(task)));
    return row;
  }

  async function refreshQueuePage(route) {
    const saves = queuePage.saves;
    const view = new URLSearchParams({
      queue: route.name,
      status: route.state,
      limit: String(PAGE_SIZE),
      offset: String(route.offset),
    });
    let queue;
    let list;
    try {
      [queue, list] = await Promise.all([
        api("GET", `/queues/${encodeURIComponent(route.name)}`),
        api("GET", `/queue/view?${view}`),
      ]);
    } catch (error) {
      if (!isRefusal(error)) throw error;
      if (isCurrent(route)) showViewProblem($("#queue-problem"), error.detail);
      return;
    }
    if (!isCurrent(route) || saves !== queuePage.saves) return;
    $("#queue-problem").hidden = true;
    renderQueueHead(queue.data);
    renderQueueList(route, list.data || [], list.total ?? queue.data[route.state]);
    keepSettingsFormCurrent(queue.data.settings || {});
  }

  function renderQueueHead(queue) {
    const settings = queue.settings || {};
    const paused = Boolean(settings.paused);
    const pause = $("#queue-pause");
    pause.dataset.paused = String(paused); // what togglePause reads
    pause.setAttribute("aria-checked", String(paused));
    $("#queue-paused-badge").hidden = !paused;
    const retry = $("#queue-retry");
    retry.hidden = queue.failed === 0;
    retry.dataset.failed = String(queue.failed); // what retryQueue reads
    for (const count of document.querySelectorAll("#queue-tabs [data-count]")) {
      setText(count, String(queue[count.dataset.count] ?? 0));
    }
    const purge = $("#queue-purge");
    const shown = queuePage.state;
    purge.hidden = shown === "processing" || !queue[shown]; // processing tasks are never purged
    purge.dataset.count = String(queue[shown] ?? 0);
    setText(purge, `Purge ${queue[shown] ?? 0} ${shown}`);
    renderLimits(settings);
    renderPush(queue);
  }

  // --- a push queue's panel --------------------------------------------------------------

  const DEFAULT_PUSH_CONCURRENCY = 10; // pushes at once per server when max_processing is unset

  // An instant of the API (RFC 3339 text, or epoch seconds) as renderTime draws it, or
  // `none` when there is none.
  function renderInstant(dd, value, none) {
    const ms = instantMs(value);
    if (ms === null) {
      delete dd.dataset.iso; // renderTime draws the instant again when one comes
      setText(dd, none);
      return;
    }
    renderTime(dd, new Date(ms).toISOString());
  }

  // The target of a push queue (settings.push) and this server's pushes to it (push_status).
  // Header values may be credentials, so only their names are shown; the last error is the
  // receiver's answer, shown as text.
  function renderPush(queue) {
    const settings = queue.settings || {};
    const target = settings.push ?? null;
    $("#queue-push-badge").hidden = target === null;
    $("#push-card").hidden = target === null;
    if (target === null) {
      forgetSecret();
      return;
    }
    setText($("#push-url"), String(target.url ?? "–"));
    const timeout = Number(target.timeout_seconds);
    setText($("#push-timeout"), Number.isFinite(timeout) ? secondsText(timeout) : "–");
    const atOnce = settings.max_processing ?? DEFAULT_PUSH_CONCURRENCY;
    setText($("#push-concurrency"), `at most ${atOnce}`);
    renderHeaderNames($("#push-headers"), Object.keys(target.headers || {}));
    renderInstant($("#push-rotated"), target.secret_rotated_at, "never");
    // A PATCH answer has no push_status: what the last GET said stays.
    if ("push_status" in queue) renderPushStatus(queue.push_status);
  }

  function renderHeaderNames(list, names) {
    const signature = JSON.stringify(names);
    if (list.dataset.signature === signature) return;
    list.dataset.signature = signature;
    const items = names.map((name) => {
      const item = document.createElement("li");
      item.textContent = name;
      return item;
    });
    if (items.length === 0) {
      const item = document.createElement("li");
      item.className = "none";
      item.textContent = "none";
      items.push(item);
    }
    list.replaceChildren(...items);
  }

  function renderPushStatus(status) {
    $("#push-status-none").hidden = status != null;
    $("#push-status").hidden = status == null;
    const error = $("#push-last-error");
    error.hidden = status == null || status.last_error == null;
    if (status == null) return;
    for (const [id, field] of [
      ["#push-in-flight", "in_flight"],
      ["#push-pushed", "pushed"],
      ["#push-failed", "failed"],
    ]) {
      setText($(id), String(status[field] ?? 0));
    }
    renderInstant($("#push-last-success"), status.last_success_at, "none yet");
    renderInstant($("#push-last-error-at"), status.last_error_at, "none");
    setText(error, status.last_error == null ? "" : String(status.last_error));
  }

  // The secret a rotation returned, shown until Done or until the page is left: it is not
  // kept anywhere else, and the server never shows it again.
  function showSecret(queue, answer) {
    setText($("#push-secret-queue"), queue);
    const input = $("#push-secret");
    input.value = String(answer.secret ?? "");
    const until = instantMs(answer.previous_secret_valid_until);
    const previous =
      until === null
        ? "Pushes are signed with the new secret and, for a while, with the previous one too."
        : `Until ${new Date(until).toLocaleString()} pushes carry a signature with the previous ` +
          "secret too, so the receiver can switch to the new one meanwhile.";
    const copyHint = navigator.clipboard ? "" : " Press Ctrl+C (⌘C) to copy the selected secret.";
    setText($("#push-secret-note"), `${previous}${copyHint}`);
    $("#push-secret-copy").hidden = !navigator.clipboard; // only in a secure context
    $("#push-secret-box").hidden = false;
    input.focus();
    input.select();
  }

  function forgetSecret() {
    $("#push-secret-box").hidden = true;
    $("#push-secret").value = "";
  }

  async function rotateSecret(button, queue) {
    const question =
      `Rotate the signing secret of queue ${queue}? The new secret is shown once. The previous ` +
      "one keeps signing pushes alongside it for a day, then stops.";
    if (!window.confirm(question)) return;
    button.disabled = true;
    try {
      const path = `/queues/${encodeURIComponent(queue)}/push/rotate-secret`;
      const { data } = await api("POST", path);
      if (queuePage.name === queue && currentRoute().view === "queue") showSecret(queue, data || {});
      showNotice(`The signing secret of queue ${queue} was rotated.`, "ok");
      pollSoon();
    } catch (error) {
      showFailure(`Rotating the secret of queue ${queue}`, error);
    } finally {
      button.disabled = false;
    }
  }

  $("#push-rotate").addEventListener("click", (event) =>
    rotateSecret(event.currentTarget, queuePage.name),
  );
  $("#push-secret-done").addEventListener("click", forgetSecret);
  $("#push-secret-copy").addEventListener("click", async () => {
    const input = $("#push-secret");
    input.select();
    try {
      await navigator.clipboard.writeText(input.value);
      showNotice("The new secret was copied.", "ok");
    } catch (_) {
      showNotice("The browser refused to copy: press Ctrl+C (⌘C) to copy the selected secret.", "error");
    }
  });

  // Each setting in force, in words (the parts of its chip).
  const SETTING_WORDS = {
    max_processing: (cap) => [`at most ${cap} processing at once`],
    rate_limit: (rate) => [`${rate.tasks} tasks per ${secondsText(rate.seconds)}`],
    lease_seconds: (seconds) => [`leases of ${secondsText(seconds)}`],
    max_attempts: (attempts) => [`${attempts} attempts`],
    retry_backoff: (seconds) => [`retry backoff from ${secondsText(seconds)}`],
    dead_letter_queue: (name) => ["failed tasks go to ", queueLink(name)],
    ttl_seconds: (seconds) => [`tasks expire after ${secondsText(seconds)}`],
  };

  // A chip per setting in force; unset ones are left out. Rebuilt only when they change, so
  // the dead-letter queue's link is not replaced under the pointer every second.
  function renderLimits(settings) {
    const list = $("#queue-limits");
    // Only the settings the chips show: a push target's header values (secrets, perhaps)
    // must not end up in the page, not even in an attribute.
    const signature = JSON.stringify(Object.keys(SETTING_WORDS).map((name) => settings[name] ?? null));
    if (list.dataset.signature === signature) return;
    list.dataset.signature = signature;
    const chip = (setting, parts) => {
      const item = document.createElement("li");
      item.dataset.setting = setting;
      item.append(...parts);
      return item;
    };
    const chips = Object.entries(SETTING_WORDS)
      .filter(([setting]) => settings[setting] != null)
      .map(([setting, words]) => chip(setting, words(settings[setting])));
    if (chips.length === 0) chips.push(chip("none", ["No limits set: the server's defaults apply."]));
    list.replaceChildren(...chips);
  }

  function renderQueueList(route, tasks, total) {
    const lastPage = Math.max(0, Math.floor((total - 1) / PAGE_SIZE) * PAGE_SIZE);
    if (tasks.length === 0 && route.offset > lastPage) {
      // Past the end (the list shrank): show its last page instead.
      replaceRoute(queueHash(route.name, route.state, lastPage));
      return;
    }
    const update = route.state === "processing" ? updateProcessing : () => {};
    syncRows($("#queue-tasks tbody"), tasks, (task) => task.id, buildListRow, update);
    $("#queue-table-wrap").hidden = tasks.length === 0;
    $("#queue-tasks-empty").hidden = tasks.length > 0;
    const first = route.offset + 1;
    const range = tasks.length ? `${first}–${route.offset + tasks.length} of ${total}` : "";
    setText($("#queue-range"), range);
    $("#queue-previous").disabled = route.offset === 0;
    $("#queue-next").disabled = route.offset + tasks.length >= total;
    $("#queue-pager").hidden = route.offset === 0 && total <= PAGE_SIZE;
  }

  function showPage(offset) {
    replaceRoute(queueHash(queuePage.name, queuePage.state, Math.max(0, offset)));
  }

  $("#queue-previous").addEventListener("click", () => showPage(currentRoute().offset - PAGE_SIZE));
  $("#queue-next").addEventListener("click", () => showPage(currentRoute().offset + PAGE_SIZE));

  $("#queue-tabs").addEventListener("click", (event) => {
    const tab = event.target.closest("[role=tab]");
    if (tab && tab.dataset.state !== currentRoute().state) {
      replaceRoute(queueHash(queuePage.name, tab.dataset.state));
    }
  });

  // Arrow keys move between the tabs, as in any tab list.
  $("#queue-tabs").addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    const tabs = [...document.querySelectorAll("#queue-tabs [role=tab]")];
    const index = tabs.indexOf(document.activeElement);
    if (step === undefined || index < 0) return;
    event.preventDefault();
    const next = tabs[(index + step + tabs.length) % tabs.length];
    next.focus();
    next.click();
  });

  $("#queue-pause").addEventListener("click", (event) =>
    togglePause(event.currentTarget, queuePage.name),
  );
  $("#queue-retry").addEventListener("click", (event) =>
    retryQueue(event.currentTarget, queuePage.name),
  );
  $("#queue-purge").addEventListener("click", (event) =>
    purgeTasks(event.currentTarget, queuePage.name, queuePage.state),
  );

  async function purgeTasks(button, queue, state) {
    const question = `Delete all ${button.dataset.count} ${state} tasks of queue ${queue} for good?`;
    if (!window.confirm(question)) return;
    button.disabled = true;
    try {
      const path = `/queues/${encodeURIComponent(queue)}/tasks?${new URLSearchParams({ status: state })}`;
      const { data } = await api("DELETE", path);
      const plural = data.deleted === 1 ? "task was" : "tasks were";
      showNotice(`${data.deleted} ${state} ${plural} deleted from queue ${queue}.`, "ok");
      pollSoon();
    } catch (error) {
      showFailure(`Purge of the ${state} tasks of queue ${queue}`, error);
    } finally {
      button.disabled = false;
    }
  }

  // --- a queue's settings form -----------------------------------------------------------

  // The form's inputs by name; a dot names a field of an object setting.
  const SETTING_INPUTS = [
    "max_processing",
    "rate_limit.tasks",
    "rate_limit.seconds",
    "lease_seconds",
    "max_attempts",
    "retry_backoff",
    "dead_letter_queue",
    "ttl_seconds",
  ];

  function settingsInput(name) {
    return $("#settings-form").elements.namedItem(name);
  }

  // Each input's text for the server's settings (null: every field empty).
  function formTexts(settings) {
    const texts = {};
    for (const name of SETTING_INPUTS) {
      const [setting, field] = name.split(".");
      let value = settings ? settings[setting] : null;
      if (field && value != null) value = value[field];
      texts[name] = value == null ? "" : String(value);
    }
    return texts;
  }

  function fillSettingsForm(settings) {
    const texts = formTexts(settings);
    for (const name of SETTING_INPUTS) {
      const input = settingsInput(name);
      if (input.value !== texts[name]) input.value = texts[name]; // leaves the caret alone
    }
    queuePage.filled = texts;
    showSettingsError(null);
  }

  function editedInputs() {
    return SETTING_INPUTS.filter(
      (name) => settingsInput(name).value.trim() !== queuePage.filled[name],
    );
  }

  // Follow the server's settings (someone else may change them) unless the user is editing:
  // a half-typed value is never overwritten.
  function keepSettingsFormCurrent(settings) {
    queuePage.settings = settings;
    if (editedInputs().length === 0) fillSettingsForm(settings);
  }

  // An input's value for the server: null when empty, a number when it reads as one, else the
  // text as typed, which the server refuses with a detail naming the setting.
  function inputValue(name) {
    const text = settingsInput(name).value.trim();
    if (text === "") return null;
    if (name === "dead_letter_queue") return text;
    const value = Number(text);
    return Number.isFinite(value) ? value : text;
  }

  function rateLimitValue() {
    const tasks = inputValue("rate_limit.tasks");
    const seconds = inputValue("rate_limit.seconds");
    if (tasks === null && seconds === null) return null;
    // Half a pair is sent as it is: the server's answer says which field is missing.
    const value = {};
    if (tasks !== null) value.tasks = tasks;
    if (seconds !== null) value.seconds = seconds;
    return value;
  }

  // The PATCH body: only the settings the user changed, so that a setting someone else
  // changed meanwhile is not put back.
  function settingsChanges() {
    const changes = {};
    for (const name of editedInputs()) {
      const [setting] = name.split(".");
      changes[setting] = setting === "rate_limit" ? rateLimitValue() : inputValue(name);
    }
    return changes;
  }

  // The server's refusal under the form, with the input of the setting it names marked.
  function showSettingsError(detail) {
    for (const name of SETTING_INPUTS) settingsInput(name).removeAttribute("aria-invalid");
    const box = $("#settings-error");
    box.hidden = detail === null;
    if (detail === null) return;
    setText(box, detail);
    const named = /^setting '([a-z_]+)'(?:\.([a-z_]+))?/.exec(detail);
    if (!named) return;
    const [, setting, dotted] = named;
    const field = dotted || (/field '([a-z_]+)'/.exec(detail) || [])[1] || "tasks";
    const input = settingsInput(setting === "rate_limit" ? `rate_limit.${field}` : setting);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  }

  async function saveSettings(event) {
    event.preventDefault();
    const queue = queuePage.name;
    const changes = settingsChanges();
    if (Object.keys(changes).length === 0) {
      showSettingsError(null);
      showNotice(`Nothing to save: no setting of queue ${queue} was changed.`, "ok");
      return;
    }
    const save = $("#settings-save");
    save.disabled = true;
    try {
      const { data } = await api("PATCH", `/queues/${encodeURIComponent(queue)}`, changes);
      queuePage.saves += 1;
      if (queuePage.name === queue) {
        fillSettingsForm(data.settings);
        renderQueueHead(data);
      }
      showNotice(`Settings of queue ${queue} saved.`, "ok");
      pollSoon();
    } catch (error) {
      if (error instanceof ApiError && error.status === 400) showSettingsError(error.detail);
      else showFailure(`Saving the settings of queue ${queue}`, error);
    } finally {
      save.disabled = false;
    }
  }

  $("#settings-form").addEventListener("submit", saveSettings);
  $("#settings-undo").addEventListener("click", () => fillSettingsForm(queuePage.settings));

  // --- a task's page ---------------------------------------------------------------------

  let shownTask = null; // the task the page shows, for its buttons

  function openTaskPage(route) {
    document.title = `Task ${shortId(route.id)} · tornado_queue`;
    if (shownTask !== null && shownTask.id === route.id) return;
    shownTask = null;
    setText($("#task-id"), route.id);
    showTaskParts(false);
    $("#task-problem").hidden = true;
  }

  function showTaskParts(shown) {
    $("#task-details").hidden = !shown;
    for (const part of document.querySelectorAll("#task-page [data-task-part]")) part.hidden = !shown;
    if (!shown) {
      $("#task-error-card").hidden = true;
      $("#task-workflow-card").hidden = true;
      $("#task-history-card").hidden = true;
      $("#task-progress-card").hidden = true;
      $("#task-retry").hidden = true;
      $("#task-delete").hidden = true;
    }
  }

  async function refreshTaskPage(route) {
    let answer;
    try {
      answer = await api("GET", `/tasks/${encodeURIComponent(route.id)}`);
    } catch (error) {
      if (!isRefusal(error)) throw error;
      if (isCurrent(route)) {
        shownTask = null;
        showTaskParts(false);
        const why = "It was deleted, or it finished long enough ago for the server to drop it.";
        showViewProblem($("#task-problem"), `${error.detail}. ${why}`);
      }
      return;
    }
    if (isCurrent(route)) renderTask(answer.data);
  }

  // Payload and result as indented JSON text: shown with textContent, never parsed as HTML.
  function prettyJson(value) {
    return JSON.stringify(value ?? null, null, 2);
  }

  function renderTask(task) {
    shownTask = task;
    $("#task-problem").hidden = true;
    showTaskParts(true);
    setText($("#task-id"), task.id);
    const status = $("#task-status");
    setText(status, task.status);
    status.className = `status-badge state-${task.status}`;
    for (const link of [$("#task-queue"), $("#task-queue-crumb")]) {
      link.href = queueHash(task.queue, task.status);
      setText(link, task.queue);
    }
    setText($("#task-attempts"), `${task.attempts} of ${task.max_attempts}`);
    setText($("#task-priority"), String(task.priority));
    setText($("#task-group"), task.group ?? "–");
    renderQueueName($("#task-dead-lettered-from"), task.dead_lettered_from);
    setText($("#task-lease-id"), task.lease_id ?? "–");
    for (const dd of document.querySelectorAll("#task-page [data-time]")) {
      renderTime(dd, task[dd.dataset.time]);
    }
    $("#task-fire-time-field").hidden = task.fire_time == null;
    const schedule = $("#task-schedule");
    $("#task-schedule-field").hidden = task.schedule == null;
    setText(schedule, task.schedule ?? "");
    schedule.title = task.schedule == null ? "" : `Schedule ${task.schedule}: see all schedules`;
    renderWorkflow(task);
    renderHistory(task);
    setText($("#task-payload"), prettyJson(task.payload));
    setText($("#task-result"), prettyJson(task.result));
    $("#task-progress-card").hidden = task.progress == null;
    setText($("#task-progress"), prettyJson(task.progress));
    $("#task-error-card").hidden = task.error == null;
    setText($("#task-error"), task.error ?? "");
    $("#task-retry").hidden = task.status !== "failed"; // only failed tasks can be retried
    $("#task-delete").hidden = task.status === "processing"; // a consumer holds it
  }

  // The parents (`after`) and dependents of a task, each a link to its page; the card is
  // hidden for a task outside any workflow. Rebuilt only when they change, so a link is not
  // replaced under the pointer every second.
  function renderWorkflow(task) {
    const after = task.after || [];
    const dependents = task.dependents || [];
    $("#task-workflow-card").hidden = after.length === 0 && dependents.length === 0;
    renderTaskLinks($("#task-after"), after, "None: it waits for no task.");
    renderTaskLinks($("#task-dependents"), dependents, "None: no task waits for it.");
  }

  function renderTaskLinks(list, ids, none) {
    const signature = JSON.stringify(ids);
    if (list.dataset.signature === signature) return;
    list.dataset.signature = signature;
    const items = ids.map((id) => {
      const item = document.createElement("li");
      item.append(taskLink(id, true));
      return item;
    });
    if (items.length === 0) {
      const item = document.createElement("li");
      item.className = "none";
      item.textContent = none;
      items.push(item);
    }
    list.replaceChildren(...items);
  }

  // An instant of the API (RFC 3339 text, or epoch seconds) in milliseconds, or null.
  function instantMs(value) {
    if (typeof value === "number") return Number.isFinite(value) ? value * 1000 : null;
    return timeMs(value);
  }

  // The task's history as a table, oldest first; hidden for a server that keeps none. Rebuilt
  // only when it changes, so a selection in it survives the refreshes.
  function renderHistory(task) {
    const history = Array.isArray(task.history) ? task.history : null;
    $("#task-history-card").hidden = history === null;
    if (history === null) return;
    const tbody = $("#task-history tbody");
    const signature = JSON.stringify(history);
    if (tbody.dataset.signature === signature) return;
    tbody.dataset.signature = signature;
    tbody.replaceChildren(...history.map(historyRow));
    const counted = `${history.length} ${history.length === 1 ? "change" : "changes"}`;
    setText($("#task-history-count"), `${counted}, oldest first`);
  }

  function historyRow(entry) {
    const row = document.createElement("tr");
    const event = String(entry.event ?? "");
    row.dataset.event = event;
    const at = instantMs(entry.at);
    const time = cell("", "time");
    if (at === null) {
      time.textContent = "–";
    } else {
      const moment = document.createElement("time");
      moment.dateTime = new Date(at).toISOString();
      moment.title = String(entry.at);
      moment.textContent = new Date(at).toLocaleString();
      const relative = document.createElement("span");
      relative.className = "sub";
      setClock(relative, "since", at);
      time.append(moment, " · ", relative);
    }
    const badge = document.createElement("span");
    badge.className = "event-badge";
    badge.dataset.event = event;
    badge.textContent = event.replaceAll("_", " ");
    const what = cell("", "event");
    what.append(badge);
    const lease = cell(entry.lease_id == null ? "–" : shortId(entry.lease_id), "mono lease");
    if (entry.lease_id != null) lease.title = String(entry.lease_id);
    const worker = cell(entry.worker == null ? "–" : String(entry.worker), "mono worker");
    const error = entry.error == null ? cell("–") : cell(String(entry.error), "error-text");
    if (entry.error != null) error.title = String(entry.error);
    row.append(time, what, lease, worker, error);
    return row;
  }

  // --- the workers view ------------------------------------------------------------------

  function buildWorker(worker) {
    const row = document.createElement("tr");
    row.dataset.worker = worker.id;
    const name = document.createElement("th");
    name.scope = "row";
    name.className = "mono";
    name.textContent = worker.id;
    row.append(name, cell("", "last-seen"), cell("", "mono holds"));
    row.append(cell("", "num completed"), cell("", "num failed"));
    return row;
  }

  function updateWorker(row, worker) {
    const seen = row.querySelector(".last-seen");
    const at = instantMs(worker.last_seen);
    setClock(seen, "since", at ?? "");
    seen.title = worker.last_seen == null ? "" : String(worker.last_seen);
    renderHeld(row.querySelector(".holds"), worker.tasks || []);
    for (const field of ["completed", "failed"]) {
      const td = row.querySelector(`.${field}`);
      setText(td, String(worker[field] ?? 0));
      td.classList.toggle("zero", !worker[field]);
    }
  }

  // The tasks a worker holds, each a link to its page; rebuilt only when they change.
  function renderHeld(td, ids) {
    const signature = JSON.stringify(ids);
    if (td.dataset.signature === signature) return;
    td.dataset.signature = signature;
    const parts = [];
    ids.slice(0, WORKER_TASKS_SHOWN).forEach((id, index) => {
      if (index > 0) parts.push(", ");
      parts.push(taskLink(id));
    });
    if (ids.length > WORKER_TASKS_SHOWN) {
      const more = document.createElement("span");
      more.className = "sub";
      more.textContent = ` +${ids.length - WORKER_TASKS_SHOWN} more`;
      parts.push(more);
    }
    if (ids.length === 0) parts.push("–");
    td.replaceChildren(...parts);
  }

  async function refreshWorkersView(route) {
    let answer;
    try {
      answer = await api("GET", "/workers");
    } catch (error) {
      // An older server without workers (404): said in the view, the connection live.
      if (!(error instanceof ApiError && error.status === 404)) throw error;
      if (isCurrent(route)) {
        const why = "This server does not list its workers (GET /workers is 404).";
        showViewProblem($("#workers-problem"), why);
        $("#workers-wrap").hidden = true;
        $("#workers-empty").hidden = true;
      }
      return;
    }
    if (!isCurrent(route)) return;
    const workers = answer.data || [];
    $("#workers-problem").hidden = true;
    syncRows($("#workers tbody"), workers, (worker) => worker.id, buildWorker, updateWorker);
    $("#workers-wrap").hidden = workers.length === 0;
    $("#workers-empty").hidden = workers.length > 0;
    const held = workers.reduce((sum, worker) => sum + (worker.tasks || []).length, 0);
    const count = `${workers.length} ${workers.length === 1 ? "worker" : "workers"}`;
    setText($("#workers-count"), `${count} · ${held} ${held === 1 ? "task" : "tasks"} held`);
  }

  // --- the schedules view ----------------------------------------------------------------

  // How a schedule runs, in words: its cron expression, or its interval.
  function scheduleRuns(schedule) {
    if (schedule.cron != null) return schedule.cron;
    if (schedule.every != null) return `every ${secondsText(schedule.every)}`;
    return "–";
  }

  // An instant of a schedule, "in 5m" or "3m ago", kept current by tick(); its time as title.
  function instantCell(kind, iso, className) {
    const ms = timeMs(iso);
    const td = ms === null ? cell("–", className) : clockCell(kind, ms, className);
    td.title = ms === null ? "" : `${new Date(ms).toLocaleString()} (${iso})`;
    return td;
  }

  function buildSchedule(schedule) {
    const row = document.createElement("tr");
    row.dataset.schedule = schedule.name;
    const name = document.createElement("th");
    name.scope = "row";
    name.className = "mono";
    const badge = document.createElement("span");
    badge.className = "paused-badge";
    badge.textContent = "paused";
    name.append(schedule.name, " ", badge);
    row.append(name, cell("", "queue"), cell("", "mono runs"), cell("", "timezone"));
    row.append(cell("", "num priority"), cell("", "num max-attempts"));
    row.append(cell("", "next-run"), cell("", "last-run"), cell("", "payload mono"));
    return row;
  }

  // Every cell from the schedule as it is now: a PUT elsewhere may have replaced it.
  function updateSchedule(row, schedule) {
    const signature = JSON.stringify(schedule);
    if (row.dataset.signature === signature) return;
    row.dataset.signature = signature;
    row.querySelector(".paused-badge").hidden = !schedule.paused;
    row.classList.toggle("paused", schedule.paused);
    row.querySelector(".queue").replaceChildren(queueLink(schedule.queue));
    setText(row.querySelector(".runs"), scheduleRuns(schedule));
    setText(row.querySelector(".timezone"), schedule.cron != null ? schedule.timezone : "–");
    setText(row.querySelector(".priority"), String(schedule.priority));
    const attempts = row.querySelector(".max-attempts");
    setText(attempts, schedule.max_attempts == null ? "default" : String(schedule.max_attempts));
    attempts.title = schedule.max_attempts == null ? "the queue's max_attempts, else the server's" : "";
    const next = schedule.paused
      ? cell("paused: never", "next-run")
      : instantCell("next", schedule.next_run_at, "next-run");
    row.querySelector(".next-run").replaceWith(next);
    row.querySelector(".last-run").replaceWith(instantCell("since", schedule.last_run_at, "last-run"));
    const payload = row.querySelector(".payload");
    setText(payload, payloadText(schedule.payload));
    payload.title = JSON.stringify(schedule.payload);
  }

  async function refreshSchedulesView(route) {
    let answer;
    try {
      answer = await api("GET", "/schedules");
    } catch (error) {
      // An older server without schedules (404): said in the view, the connection live.
      if (!(error instanceof ApiError && error.status === 404)) throw error;
      if (isCurrent(route)) {
        showViewProblem($("#schedules-problem"), "This server has no schedules (GET /schedules is 404).");
        $("#schedules-wrap").hidden = true;
        $("#schedules-empty").hidden = true;
      }
      return;
    }
    if (!isCurrent(route)) return;
    const schedules = answer.data || [];
    $("#schedules-problem").hidden = true;
    syncRows($("#schedules tbody"), schedules, (schedule) => schedule.name, buildSchedule, updateSchedule);
    $("#schedules-wrap").hidden = schedules.length === 0;
    $("#schedules-empty").hidden = schedules.length > 0;
    const paused = schedules.filter((schedule) => schedule.paused).length;
    const count = `${schedules.length} ${schedules.length === 1 ? "schedule" : "schedules"}`;
    setText($("#schedules-count"), paused ? `${count} · ${paused} paused` : count);
  }

  // A queue's name as a link to its page, or a dash; rebuilt only when it changes.
  function renderQueueName(element, name) {
    if (name == null) {
      setText(element, "–");
    } else if (element.textContent !== name || !element.querySelector("a")) {
      element.replaceChildren(queueLink(name));
    }
  }

  // An instant as local time and how long ago (or how soon) it is, which tick() keeps current.
  function renderTime(dd, iso) {
    const key = iso ?? "";
    if (dd.dataset.iso === key && dd.childNodes.length) return; // unchanged: keep any selection
    dd.dataset.iso = key;
    const ms = timeMs(iso);
    if (ms === null) {
      dd.textContent = "–";
      return;
    }
    const time = document.createElement("time");
    time.dateTime = iso;
    time.title = iso;
    time.textContent = new Date(ms).toLocaleString();
    const relative = document.createElement("span");
    relative.className = "sub";
    setClock(relative, "relative", ms);
    dd.replaceChildren(time, " · ", relative);
  }

  $("#task-retry").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    const task = shownTask;
    if (task === null) return;
    if (!window.confirm(`Retry task ${task.id}? It goes back to pending with fresh attempts.`)) return;
    await retryTask(button, task);
    button.disabled = false; // hidden until the task fails again, then usable
  });

  $("#task-delete").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    const task = shownTask;
    if (task === null) return;
    const deleted = await deleteTask(button, task);
    button.disabled = false;
    // Replace the gone task's history entry: back should not lead to a missing task.
    if (deleted) location.replace(queueHash(task.queue, task.status));
  });

  // --- reading the server ----------------------------------------------------------------

  async function fetchTotals() {
    try {
      return (await api("GET", "/queue/totals")).data;
    } catch (error) {
      // An older server without the route: show everything else anyway.
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }
  }

  const NONE = { tasks: [], total: 0 };

  async function fetchList(queue, state, limit) {
    if (!(queue[state] > 0)) return NONE;
    const params = new URLSearchParams({ queue: queue.name, limit: String(limit) });
    if (state !== "pending") params.set("status", state);
    const answer = await api("GET", `/queue/view?${params}`);
    // Keep only tasks in the asked state: a server without `status` answers pending tasks,
    // and then its total is not this state's either.
    const all = answer.data || [];
    const tasks = all.filter((task) => task.status === state);
    const understood = tasks.length === all.length && answer.total !== null;
    return { tasks, total: understood ? answer.total : tasks.length };
  }

  // The overview's three lists of one queue.
  async function fetchQueueLists(queue) {
    const [pending, failed, processing] = await Promise.all([
      fetchList(queue, "pending", HEAD_LIMIT),
      fetchList(queue, "failed", LIST_LIMIT),
      fetchList(queue, "processing", LIST_LIMIT),
    ]);
    return { pending, failed, processing };
  }

  // These queues' settings; a server without `GET /queues/{name}` (404) has none.
  async function fetchSettings(queues) {
    const answers = await Promise.all(
      queues.map((queue) =>
        api("GET", `/queues/${encodeURIComponent(queue.name)}`).catch((error) => {
          if (error instanceof ApiError && error.status === 404) return null;
          throw error;
        }),
      ),
    );
    const settings = new Map();
    answers.forEach((answer, index) => {
      if (answer !== null && answer.data && answer.data.settings) {
        settings.set(queues[index].name, answer.data.settings);
      }
    });
    return settings;
  }

  // What the overview last read of each queue it details, so that an event about one queue
  // reads that queue's lists again and not every queue's.
  const overview = {
    counts: new Map(), // queue → its counts as they were when its lists were read
    lists: new Map(), // queue → {pending, failed, processing}
    settings: new Map(), // queue → its settings
  };

  const countsOf = (queue) => STATES.map((state) => queue[state]).join();

  let lastSampleAt = -Infinity;

  async function refreshOverview(changes) {
    const full = changes.full || changes.allQueues;
    const queuesChanged = full || changes.queues.size > 0;
    const sampleDue = performance.now() - lastSampleAt >= SAMPLE_MS;
    const sampling = full || ((queuesChanged || changes.sample) && sampleDue);
    if (!queuesChanged && !sampling) {
      if (changes.sample) wantSample(); // not due yet: at its time
      return false;
    }
    if (queuesChanged && !sampling) wantSample(); // the chart catches up within a second
    const [queues, totals] = await Promise.all([
      queuesChanged ? api("GET", "/queues") : null,
      sampling ? fetchTotals() : undefined,
    ]);
    if (queues !== null) {
      const list = queues.data;
      const shown = list.slice(0, MAX_DETAIL_QUEUES);
      // A queue's lists are read again when an event named it or its counts moved (a task
      // that was dead-lettered names the queue it went to, not the one it left).
      const stale = shown.filter(
        (queue) =>
          full ||
          changes.queues.has(queue.name) ||
          overview.counts.get(queue.name) !== countsOf(queue),
      );
      const unknown = full ? shown : shown.filter((queue) => !overview.settings.has(queue.name));
      const [lists, settings] = await Promise.all([
        Promise.all(stale.map(fetchQueueLists)),
        fetchSettings(unknown),
      ]);
      const names = new Set(shown.map((queue) => queue.name));
      for (const map of [overview.counts, overview.lists, overview.settings]) {
        for (const name of map.keys()) if (full || !names.has(name)) map.delete(name);
      }
      stale.forEach((queue, index) => {
        overview.counts.set(queue.name, countsOf(queue));
        overview.lists.set(queue.name, lists[index]);
      });
      for (const [name, value] of settings) overview.settings.set(name, value);
      renderQueues(list, overview.settings);
      const of = (state) => shown.map((queue) => overview.lists.get(queue.name)[state]);
      renderTasks("pending", of("pending"), buildPending);
      renderTasks("failed", of("failed"), buildFailed);
      renderTasks("processing", of("processing"), buildProcessing, updateProcessing);
    }
    if (totals !== undefined) {
      lastSampleAt = performance.now();
      renderThroughput(totals);
    }
    return true;
  }

  // What changed since the last refresh, from the event stream (or everything: `full`).
  function noChanges() {
    return {
      full: false,
      allQueues: false,
      queues: new Set(),
      task: false, // the shown task
      workers: false,
      schedules: false,
      sample: false, // a throughput sample is due
    };
  }

  // Only the shown view's data is read, and with events only when they touch it: a queue
  // page does not read every queue's lists, nor a task page anything about another task.
  // False when there was nothing to read.
  async function refreshView(route, changes) {
    const queues = changes.full || changes.allQueues;
    if (route.view === "queue") {
      if (!queues && !changes.queues.has(route.name)) return false;
      await refreshQueuePage(route);
    } else if (route.view === "task") {
      if (!changes.full && !changes.task) return false;
      await refreshTaskPage(route);
    } else if (route.view === "schedules") {
      if (!changes.full && !changes.schedules) return false;
      await refreshSchedulesView(route);
    } else if (route.view === "workers") {
      if (!changes.full && !changes.workers) return false;
      await refreshWorkersView(route);
    } else {
      return refreshOverview(changes);
    }
    return true;
  }

  // --- when to read: on events, and on a timer (each second while polling) --------------

  let changes = noChanges();
  changes.full = true;
  let refreshing = false;
  let queuedDelay = null; // a refresh asked for while one ran: how soon after it
  let refreshTimer = null;
  let refreshDue = Infinity;
  let beatTimer = null; // the next full refresh
  let lastRefreshAt = -Infinity;
  let lastError = null; // what the last refresh failed with, or null

  // A refresh of the changes noted so far in `delay` ms, unless one is due sooner.
  function refreshIn(delay) {
    if (refreshing) {
      queuedDelay = Math.min(queuedDelay ?? Infinity, delay);
      return;
    }
    const due = performance.now() + Math.max(0, delay);
    if (refreshTimer !== null && refreshDue <= due) return;
    clearTimeout(refreshTimer);
    refreshDue = due;
    refreshTimer = setTimeout(refresh, Math.max(0, delay));
  }

  function scheduleBeat(delay) {
    clearTimeout(beatTimer);
    beatTimer = setTimeout(() => {
      changes.full = true;
      refreshIn(0);
    }, Math.max(0, delay));
  }

  // The full refresh's interval: while the stream is open only what it does not report is
  // read by the clock; after a failure, every poll interval until the server answers again.
  function beatInterval() {
    if (stream.mode !== "live" || lastError !== null) return POLL_MS;
    // No event reports a processing task's progress or a heartbeat: its page polls for them.
    const route = currentRoute();
    const processing = shownTask !== null && shownTask.status === "processing";
    if (route.view === "task" && processing && shownTask.id === route.id) return POLL_MS;
    return LIVE_REFRESH_MS;
  }

  async function refresh() {
    clearTimeout(refreshTimer);
    refreshTimer = null;
    refreshDue = Infinity;
    if (waitingForToken) return;
    if (refreshing) {
      queuedDelay = 0;
      return;
    }
    refreshing = true;
    const started = performance.now();
    lastRefreshAt = started;
    const taken = changes;
    changes = noChanges();
    try {
      if ((await refreshView(currentRoute(), taken)) !== false) setConnection(null);
    } catch (error) {
      changes.full = true; // what failed is read again, all of it
      setConnection(error);
    } finally {
      refreshing = false;
      if (!waitingForToken) {
        const took = performance.now() - started;
        if (taken.full || lastError !== null) scheduleBeat(beatInterval() - took);
        if (queuedDelay !== null) refreshIn(queuedDelay);
        queuedDelay = null;
      }
    }
  }

  // Everything the view shows, now: after a button's action, on another view, on a resync.
  function pollSoon() {
    changes.full = true;
    refreshIn(0);
  }

  // Changes reported by events: read at most every EVENT_REFRESH_MS.
  function refreshForEvents() {
    refreshIn(lastRefreshAt + EVENT_REFRESH_MS - performance.now());
  }

  // The throughput chart gets a sample once SAMPLE_MS has passed since the last one.
  function wantSample() {
    changes.sample = true;
    refreshIn(lastSampleAt + SAMPLE_MS - performance.now());
  }

  // --- the connection line ---------------------------------------------------------------

  function setConnection(error) {
    lastError = error;
    const banner = $("#banner");
    const status = $("#connection");
    if (error === null) {
      banner.hidden = true;
      status.dataset.state = stream.mode;
      const how = stream.mode === "live" ? "Live" : "Polling";
      setText($("#connection-text"), `${how} · updated ${new Date().toLocaleTimeString()}`);
      return;
    }
    status.dataset.state = "down";
    if (isAuthError(error)) {
      // The token form says what is wrong; a red banner on top of it would only repeat it.
      setText($("#connection-text"), "Needs a token");
      banner.hidden = true;
      askForToken(error);
      return;
    }
    setText($("#connection-text"), "Disconnected");
    const retrying = `Retrying ${pollEvery()}…`;
    if (error instanceof ApiError) {
      banner.textContent = `The server answered ${error.status}: ${error.detail}. ${retrying}`;
    } else if (error instanceof Unreachable) {
      banner.textContent = `Cannot reach the server at ${location.host} (${error.message}). ${retrying}`;
    } else {
      banner.textContent = `The dashboard failed to read the server's answer (${error}). ${retrying}`;
    }
    banner.hidden = false;
  }

  function pollEvery() {
    return POLL_MS === 1000 ? "every second" : `every ${secondsText(POLL_MS / 1000)}`;
  }

  // Live (the event stream is open) or polling, and why, in the header and the footer.
  function showMode() {
    const status = $("#connection");
    if (status.dataset.state === "live" || status.dataset.state === "polling") {
      status.dataset.state = stream.mode;
      const text = $("#connection-text");
      const how = stream.mode === "live" ? "Live" : "Polling";
      setText(text, text.textContent.replace(/^(Live|Polling)/, how));
    }
    const note =
      stream.mode === "live"
        ? "Live: redrawn as the server's event stream (GET /events) reports changes"
        : `Polls the JSON API ${pollEvery()}`;
    setText($("#updates-note"), note);
    status.title = stream.mode === "live" ? "The event stream is open." : stream.why;
  }

  // --- the event stream ------------------------------------------------------------------
  //
  // One stream for every view (no ?queue= filter): switching views keeps it, and the overview
  // and the workers need every queue's events anyway. An event marks what it changed; the
  // next refresh reads only that. The stream is given up for polling when the server has no
  // GET /events (404, 405, 501: an older server) or after STREAM_FAILURES_TO_POLL attempts in
  // a row that did not open; it is tried again meanwhile, and the page goes live once it opens.

  const STREAM_FAILURES_TO_POLL = 3;
  const STREAM_MAX_RETRY_MS = 30000;
  const STREAM_PROBE_MS = 60000; // an older server (or a refused token) is asked this often
  const STREAM_SILENCE_MS = 45000; // the server sends a keep-alive every 15 s
  const WORKER_EVENTS = new Set([
    "delivered",
    "completed",
    "failed",
    "dead",
    "lease_expired",
    "dead_lettered",
  ]);

  const stream = {
    mode: "polling", // until it opens
    why: "Opening the event stream…",
    retryMs: 2000, // the server's retry field replaces it
    lastEventId: "",
    failures: 0, // attempts in a row that did not open
    controller: null,
    timer: null,
  };

  function setMode(mode, why) {
    const wasLive = stream.mode === "live";
    stream.mode = mode;
    stream.why = why;
    showMode();
    // From polling to live the clock slows to LIVE_REFRESH_MS, and back.
    if (wasLive !== (mode === "live") && !waitingForToken) scheduleBeat(beatInterval());
  }

  function openStream() {
    clearTimeout(stream.timer);
    if (stream.controller !== null) stream.controller.abort();
    const controller = new AbortController();
    stream.controller = controller;
    followStream(controller);
  }

  function reopenIn(delay) {
    clearTimeout(stream.timer);
    stream.timer = setTimeout(openStream, delay);
  }

  async function followStream(controller) {
    const outcome = await window.TornadoQueueSse.follow("/events", {
      headers: authHeaders(),
      signal: controller.signal,
      lastEventId: stream.lastEventId,
      silenceMs: STREAM_SILENCE_MS,
      onOpen: () => {
        if (controller !== stream.controller) return;
        const resumed = stream.lastEventId !== "";
        stream.failures = 0;
        setMode("live", "");
        // Resumed, the server sends what was missed (or a resync); else all is read now.
        if (!resumed) pollSoon();
      },
      onEvent: (event) => {
        if (controller === stream.controller) takeEvent(event);
      },
      onRetry: (ms) => {
        stream.retryMs = ms;
      },
    });
    if (controller !== stream.controller) return; // replaced: a token came or went
    stream.controller = null;
    stream.lastEventId = outcome.lastEventId;
    if (outcome.kind === "aborted") return;
    if (outcome.kind === "ended" || outcome.kind === "broken") {
      // It was open: reconnect as the server asked, resuming from the last event.
      stream.failures = 1;
      reopenIn(stream.retryMs);
      return;
    }
    if (outcome.kind === "refused" && [401, 403, 404, 405, 501].includes(outcome.status)) {
      const why =
        outcome.status === 401 || outcome.status === 403
          ? `The event stream refused the token (GET /events answered ${outcome.status}).`
          : `This server has no event stream (GET /events answered ${outcome.status}).`;
      stream.failures = STREAM_FAILURES_TO_POLL;
      setMode("polling", why);
      reopenIn(STREAM_PROBE_MS); // a token given meanwhile reopens it at once
      return;
    }
    stream.failures += 1;
    const failedFor = stream.failures - STREAM_FAILURES_TO_POLL;
    const delay = Math.min(STREAM_MAX_RETRY_MS, stream.retryMs * 2 ** Math.max(0, failedFor));
    if (failedFor >= 0) {
      const tries = `${stream.failures} tries in a row`;
      const again = secondsText(Math.round(delay / 1000));
      setMode("polling", `The event stream failed (${outcome.detail}; ${tries}); trying again in ${again}.`);
    }
    // Until it polls anyway, a read now says whether the server answers at all.
    if (failedFor <= 0) pollSoon();
    reopenIn(delay);
  }

  function takeEvent(event) {
    if (event.type === "resync") {
      // Events were missed that the server no longer has: read everything again.
      pollSoon();
      return;
    }
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (_) {
      return; // not an event of ours
    }
    if (data === null || typeof data !== "object") return;
    if (typeof data.queue === "string") changes.queues.add(data.queue);
    // A dead-lettered task names the queue it went to: the one it left changed too.
    if (event.type === "dead_lettered") changes.allQueues = true;
    const route = currentRoute();
    if (route.view === "task" && data.id === route.id) changes.task = true;
    if (WORKER_EVENTS.has(event.type)) changes.workers = true;
    if (event.type === "enqueued") changes.schedules = true; // a schedule may have fired
    refreshForEvents();
  }

  keepToken(storedToken()); // show "Forget token" when the tab already holds one
  showRoute();
  showMode();
  setInterval(tick, 1000);
  refresh();
  openStream();
})();
