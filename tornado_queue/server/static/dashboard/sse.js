// Server-Sent Events read with fetch() and a ReadableStream, for the dashboard (dashboard.js).
//
// Not EventSource: it cannot send the Authorization header a server with tokens needs, and
// when it fails it does not say why, so a 404 from a server without GET /events (where the
// page must fall back to polling) looks the same as a dropped connection. One reader for both
// cases keeps one code path. The parser follows the WHATWG rules for text/event-stream:
// lines end in CRLF, LF or CR; `:` starts a comment; `id`, `event`, `data` and `retry` are the
// fields; a blank line dispatches an event; an event cut off by the end of the stream is dropped.
"use strict";

window.TornadoQueueSse = (() => {
  const LINE_BREAK = /\r\n|\r|\n/g;

  class EventStreamParser {
    // onEvent({type, data, lastEventId}) for each event; onRetry(ms) for each retry field.
    constructor({ onEvent, onRetry }, lastEventId = "") {
      this.onEvent = onEvent;
      this.onRetry = onRetry || (() => {});
      this.lastEventId = lastEventId; // as of the last dispatch: what a reconnection sends
      this.idBuffer = lastEventId;
      this.type = "";
      this.data = "";
      this.partial = ""; // the start of a line whose end has not come yet
      this.skipLineFeed = false; // the last text ended in CR: an LF first in the next is its pair
      this.started = false;
    }

    feed(text) {
      if (text === "") return;
      if (!this.started) {
        this.started = true;
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a byte order mark
      }
      if (this.skipLineFeed && text[0] === "\n") text = text.slice(1);
      this.skipLineFeed = false;
      const buffer = this.partial + text;
      let start = 0;
      LINE_BREAK.lastIndex = 0;
      for (let found = LINE_BREAK.exec(buffer); found !== null; found = LINE_BREAK.exec(buffer)) {
        this.line(buffer.slice(start, found.index));
        start = LINE_BREAK.lastIndex;
        if (found[0] === "\r" && start === buffer.length) this.skipLineFeed = true;
      }
      this.partial = buffer.slice(start);
    }

    line(line) {
      if (line === "") {
        this.dispatch();
        return;
      }
      if (line[0] === ":") return; // a comment: the server's keep-alive
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
      if (field === "event") this.type = value;
      else if (field === "data") this.data += `${value}\n`;
      else if (field === "id" && !value.includes("\0")) this.idBuffer = value;
      else if (field === "retry" && /^\d+$/.test(value)) this.onRetry(Number(value));
      // any other field is ignored, as the format says
    }

    dispatch() {
      this.lastEventId = this.idBuffer;
      const { type, data } = this;
      this.type = "";
      this.data = "";
      if (data === "") return; // an id alone still moves lastEventId
      this.onEvent({ type: type || "message", data: data.slice(0, -1), lastEventId: this.lastEventId });
    }
  }

  // One connection to `url`: resolves, never rejects, when it is over, with its outcome:
  //   {kind: "refused", status, detail}  the answer was not a 200 event stream (none opened)
  //   {kind: "failed", detail}           no answer, or the connection broke before opening
  //   {kind: "ended" | "broken", detail} the stream opened, then the server ended it or it broke
  //   {kind: "aborted"}                  `signal` stopped it
  // with `lastEventId` as of its last event. `silenceMs` without a byte (keep-alives included)
  // counts as broken: a connection a proxy dropped without a word.
  async function follow(url, { headers, signal, lastEventId, silenceMs, onOpen, onEvent, onRetry }) {
    const stopper = new AbortController();
    const stop = () => stopper.abort();
    signal.addEventListener("abort", stop, { once: true });
    let silent = false;
    let timer = null;
    const listen = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        silent = true;
        stopper.abort();
      }, silenceMs);
    };
    const parser = new EventStreamParser({ onEvent, onRetry }, lastEventId);
    const outcome = (kind, fields) => ({
      kind: signal.aborted ? "aborted" : kind,
      lastEventId: parser.lastEventId,
      ...fields,
    });
    const sent = { Accept: "text/event-stream", ...headers };
    if (lastEventId) sent["Last-Event-ID"] = lastEventId;
    listen();
    try {
      let response;
      try {
        response = await fetch(url, { headers: sent, cache: "no-store", signal: stopper.signal });
      } catch (_) {
        return outcome("failed", { detail: silent ? "no answer" : "connection failed" });
      }
      const type = (response.headers.get("Content-Type") || "").split(";")[0].trim().toLowerCase();
      if (!response.ok || type !== "text/event-stream" || !response.body) {
        response.body?.cancel().catch(() => {});
        const detail = response.ok
          ? `answered ${type || "no content type"}, not text/event-stream`
          : `answered ${response.status}`;
        return outcome("refused", { status: response.status, detail });
      }
      onOpen(response);
      const reader = response.body.getReader();
      const decoder = new TextDecoder(); // UTF-8, as the format requires
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          listen();
          parser.feed(decoder.decode(value, { stream: true }));
        }
      } catch (_) {
        const detail = silent ? `silent for ${silenceMs / 1000} s` : "the connection broke";
        return outcome("broken", { detail });
      }
      parser.feed(decoder.decode());
      return outcome("ended", { detail: "the server ended the stream" });
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", stop);
    }
  }

  return Object.freeze({ EventStreamParser, follow });
})();
