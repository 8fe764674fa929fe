// tornado_queue dashboard: polls the JSON API every second and draws what it reads.
//
// Every task field (payload, error, even the id) comes from whoever enqueued it, so text only
// ever reaches the page through textContent and DOM properties, never parsed as HTML.
"use strict";

(() => {
  const POLL_MS = 1000;
  const REQUEST_TIMEOUT_MS = 5000;
  const HISTORY_MS = 5 * 60 * 1000;
  const RATE_WINDOW_MS = 5000; // the headline rates average the last few seconds
  const GAP_MS = 5000; // samples further apart than this break the chart's lines
  const HEAD_LIMIT = 5; // pending tasks shown per queue
  const LIST_LIMIT = 10; // processing / failed tasks shown per queue
  const MAX_DETAIL_QUEUES = 20; // bounds the requests one poll makes
  const PAYLOAD_CHARS = 160;
  const STATES = ["pending", "scheduled", "processing", "completed", "failed"];
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
  });

  $("#forget-token").addEventListener("click", () => {
    keepToken(null);
    showNotice("The token was forgotten.", "ok");
    pollSoon();
  });

  // Every request goes through here, with the bearer token when the tab holds one.
  async function api(method, path, body) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = storedToken();
    if (token !== null) headers.Authorization = `Bearer ${token}`;
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

  // A cell that tick() keeps current: a countdown to a deadline, or the time since an instant.
  function clockCell(kind, atMs, className) {
    const td = cell("", className);
    td.dataset.clock = kind;
    td.dataset.at = String(atMs);
    updateClock(td);
    return td;
  }

  function updateClock(td) {
    const at = Number(td.dataset.at);
    if (td.dataset.at === "" || Number.isNaN(at)) {
      setText(td, "–");
      return;
    }
    if (td.dataset.clock === "until") {
      const left = at - serverNow();
      td.classList.toggle("overdue", left <= 0);
      setText(td, left <= 0 ? "expired" : formatDuration(left));
    } else {
      setText(td, `${formatDuration(serverNow() - at)} ago`);
    }
  }

  function tick() {
    for (const td of document.querySelectorAll("td[data-clock]")) updateClock(td);
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
        name.textContent = queue.name;
        const badge = document.createElement("span");
        badge.className = "paused-badge";
        badge.textContent = "paused";
        badge.hidden = true;
        name.append(" ", badge);
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

  function taskIdCell(task) {
    const td = cell(shortId(task.id), "mono");
    td.title = task.id;
    return td;
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
      cell(`${task.attempts} of ${task.max_attempts}`, "num"),
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

  function buildFailed(task) {
    const row = document.createElement("tr");
    row.dataset.taskId = task.id;
    const error = cell(task.error ?? "–", "error-text");
    error.title = task.error ?? "";
    const retry = document.createElement("button");
    retry.type = "button";
    retry.textContent = "Retry";
    retry.addEventListener("click", () =>
      act(retry, "POST", `/tasks/${encodeURIComponent(task.id)}/retry`, "Retry", task),
    );
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "danger";
    remove.textContent = "Delete";
    remove.addEventListener("click", () => {
      if (!window.confirm(`Delete task ${task.id} for good?`)) return;
      act(remove, "DELETE", `/tasks/${encodeURIComponent(task.id)}`, "Delete", task);
    });
    const actions = document.createElement("td");
    const group = document.createElement("div");
    group.className = "actions";
    group.append(retry, remove);
    actions.append(group);
    row.append(
      cell(task.queue),
      taskIdCell(task),
      cell(`${task.attempts} of ${task.max_attempts}`, "num"),
      error,
      clockCell("since", timeMs(task.finished_at) ?? "", "age"),
      payloadCell(task),
      actions,
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

  async function act(button, method, path, verb, task) {
    button.disabled = true;
    try {
      await api(method, path);
      const done = verb === "Retry" ? "is pending again" : "was deleted";
      showNotice(`Task ${task.id} (${task.queue}) ${done}.`, "ok");
      pollSoon();
    } catch (error) {
      showFailure(`${verb} of task ${task.id}`, error);
      button.disabled = false;
    }
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

  // --- polling ---------------------------------------------------------------------------

  async function fetchTotals() {
    try {
      return (await api("GET", "/queue/totals")).data;
    } catch (error) {
      // An older server without the route: show everything else anyway.
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }
  }

  async function fetchList(queue, state, limit) {
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

  // Each shown queue's settings; a server without `GET /queues/{name}` (404) shows none.
  async function fetchSettings(queues) {
    const shown = queues.slice(0, MAX_DETAIL_QUEUES);
    const answers = await Promise.all(
      shown.map((queue) =>
        api("GET", `/queues/${encodeURIComponent(queue.name)}`).catch((error) => {
          if (error instanceof ApiError && error.status === 404) return null;
          throw error;
        }),
      ),
    );
    const settings = new Map();
    answers.forEach((answer, index) => {
      if (answer !== null && answer.data && answer.data.settings) {
        settings.set(shown[index].name, answer.data.settings);
      }
    });
    return settings;
  }

  async function fetchLists(queues, state, limit) {
    const wanted = queues.slice(0, MAX_DETAIL_QUEUES).filter((queue) => queue[state] > 0);
    return Promise.all(wanted.map((queue) => fetchList(queue, state, limit)));
  }

  function setConnection(error) {
    const banner = $("#banner");
    const status = $("#connection");
    if (error === null) {
      banner.hidden = true;
      status.dataset.state = "live";
      setText($("#connection-text"), `Live · updated ${new Date().toLocaleTimeString()}`);
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
    if (error instanceof ApiError) {
      banner.textContent = `The server answered ${error.status}: ${error.detail}. Retrying every second…`;
    } else if (error instanceof Unreachable) {
      banner.textContent = `Cannot reach the server at ${location.host} (${error.message}). Retrying every second…`;
    } else {
      banner.textContent = `The dashboard failed to read the server's answer (${error}). Retrying every second…`;
    }
    banner.hidden = false;
  }

  let pollTimer = null;
  let polling = false;
  let pollAgain = false;

  async function poll() {
    clearTimeout(pollTimer);
    polling = true;
    const started = performance.now();
    try {
      const [queues, totals] = await Promise.all([api("GET", "/queues"), fetchTotals()]);
      const list = queues.data;
      const [pending, failed, processing, settings] = await Promise.all([
        fetchLists(list, "pending", HEAD_LIMIT),
        fetchLists(list, "failed", LIST_LIMIT),
        fetchLists(list, "processing", LIST_LIMIT),
        fetchSettings(list),
      ]);
      renderQueues(list, settings);
      renderThroughput(totals);
      renderTasks("pending", pending, buildPending);
      renderTasks("failed", failed, buildFailed);
      renderTasks("processing", processing, buildProcessing, updateProcessing);
      setConnection(null);
    } catch (error) {
      setConnection(error);
    } finally {
      polling = false;
      const delay = pollAgain ? 0 : Math.max(0, POLL_MS - (performance.now() - started));
      pollAgain = false;
      if (!waitingForToken) pollTimer = setTimeout(poll, delay);
    }
  }

  // After a button's action: show its effect now rather than at the next regular poll.
  function pollSoon() {
    if (polling) {
      pollAgain = true;
    } else {
      clearTimeout(pollTimer);
      pollTimer = setTimeout(poll, 0);
    }
  }

  keepToken(storedToken()); // show "Forget token" when the tab already holds one
  setInterval(tick, 1000);
  poll();
})();
