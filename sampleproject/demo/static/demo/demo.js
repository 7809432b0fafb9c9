/*
 * The demo's page shell: the socket's frame log, the status pill, who and which window
 * this is, and error replies in words. Loaded (deferred) right after the floorchannels
 * bundle, so it connects the page's client with its own WebSocket class before the
 * bundle's autostart would connect a plain one.
 */
"use strict";

(() => {
  const FRAME_LOG_LINES = 150;

  /* The last FRAME_LOG_LINES frames, newest first; older ones are dropped, never kept. */
  const frameLog = {
    count: 0,
    add(direction, text) {
      this.count += 1;
      const list = document.getElementById("frame-log");
      if (!list) return;
      const line = document.createElement("li");
      line.className = "frame frame-" + direction;
      line.dataset.direction = direction;
      const time = document.createElement("time");
      time.textContent = new Date().toLocaleTimeString([], { hour12: false });
      const arrow = document.createElement("span");
      arrow.className = "frame-dir";
      arrow.textContent = { out: "sent", in: "received", open: "open", close: "closed" }[direction];
      const body = document.createElement("code");
      body.className = "frame-body";
      body.textContent = text.length > 300 ? text.slice(0, 300) + "…" : text;
      line.append(time, arrow, body);
      list.prepend(line);
      while (list.children.length > FRAME_LOG_LINES) list.lastElementChild.remove();
      const counter = document.getElementById("frame-count");
      if (counter) counter.textContent = String(this.count);
    },
  };

  // excerpt: frames
  // Any WebSocket class will do: this one logs each frame, then behaves as usual.
  class LoggedWebSocket extends WebSocket {
    constructor(url) {
      super(url);
      this.addEventListener("open", () => frameLog.add("open", url));
      this.addEventListener("message", (event) => frameLog.add("in", String(event.data)));
      this.addEventListener("close", (event) => frameLog.add("close", "code " + event.code));
    }
    send(data) {
      frameLog.add("out", data);
      super.send(data);
    }
  }
  const client = floorchannels.connect({ WebSocket: LoggedWebSocket });
  // end excerpt

  /* Every documented error code (docs/protocol.md and the client's own), in words. */
  const ERROR_MESSAGES = {
    invalid_frame: "The server could not read that request.",
    unknown_signal: "The server has no signal by that name.",
    forbidden: "Your account is not allowed to do that.",
    invalid_arguments: "The values sent do not fit what the signal expects.",
    server_error: "Something broke on the server. It logged the details; the page carries on.",
    timeout: "No answer came in time. Try again in a moment.",
    rate_limited: "Too many requests at once. Slow down and try again.",
    unknown_resource: "There is no live list by that name.",
    not_found: "That item does not exist, or you may not see it.",
    too_many_subscriptions: "This window already follows as many live lists as the server allows.",
    too_many_topics: "This window is already in as many topics as the server allows.",
    buffer_full: "You are offline and too many actions are waiting. Try again once reconnected.",
    closed: "This page's connection is closed. Reload the page.",
    disconnected: "The connection dropped before the answer came: the action may or may not have happened.",
    invalid_kwargs: "This control is misconfigured: its data-fc-kwargs is not a JSON object.",
    aborted: "The subscription was cancelled before the server accepted it.",
  };

  /* Where a control shows its error sentence: the element its data-demo-error names. */
  function messageSlot(el) {
    const selector = el && el.getAttribute && el.getAttribute("data-demo-error");
    return selector ? document.querySelector(selector) : null;
  }

  function showError(el, message, code) {
    const slot = messageSlot(el);
    if (slot) {
      slot.textContent = message;
      slot.dataset.code = code || "";
      slot.hidden = false;
    }
  }

  function clearError(el) {
    const slot = messageSlot(el);
    if (slot) {
      slot.textContent = "";
      slot.hidden = true;
    }
  }

  // excerpt: errors
  function describe(error) {
    return ERROR_MESSAGES[error.code] || "Something went wrong (" + error.code + ").";
  }
  // Declarative controls (data-fc-call) report failures with a DOM event.
  document.addEventListener("floorchannels:error", (event) => {
    showError(event.target, describe(event.detail.error), event.detail.code);
  });
  // end excerpt
  document.addEventListener("floorchannels:result", (event) => {
    clearError(event.target);
  });

  /* The status pill follows the client's state. */
  const state = document.getElementById("state");
  function showState() {
    if (!state) return;
    state.textContent = client.state;
    state.closest(".pill").dataset.state = client.state;
  }
  client.addEventListener("statechange", showState);
  showState();

  /* Which window this is: the id the server gave it. */
  client.addEventListener("welcome", (event) => {
    document.querySelectorAll("[data-window-id]").forEach((el) => {
      el.textContent = event.detail.window_id.slice(0, 8);
      el.title = event.detail.window_id;
    });
  });

  document.addEventListener("click", (event) => {
    const opener = event.target.closest("[data-open-window]");
    if (opener) {
      event.preventDefault();
      window.open(location.href, "_blank", "popup=yes,width=560,height=860");
    }
    if (event.target.closest("#frame-clear")) {
      const list = document.getElementById("frame-log");
      if (list) list.textContent = "";
    }
  });

  window.demo = {
    client,
    describe,
    showError,
    clearError,
    ERROR_MESSAGES,
  };
})();
