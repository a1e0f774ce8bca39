// aiplus console: the little the pages need beyond HTML. No framework, no inline script (the
// Content-Security-Policy forbids it), no innerHTML: text from the server goes in as text.
"use strict";

(function () {
  // Live job page: state, lifecycle events and logs over server-sent events.
  const live = document.querySelector("[data-live-job]");
  if (live && window.EventSource) {
    const id = live.getAttribute("data-live-job");
    const state = document.getElementById("job-state");
    const events = document.querySelector("#job-events tbody");
    const log = document.getElementById("job-log");
    const status = document.getElementById("live-status");
    const MAX_LOG_CHARS = 1 << 20;
    // Start where the server-rendered page stopped, so nothing shows twice.
    const offset = live.getAttribute("data-log-offset") || "0";
    const after = live.getAttribute("data-after-seq") || "0";
    const src = new EventSource("/jobs/" + encodeURIComponent(id) + "/live?offset=" + offset + "&after=" + after);
    const setState = (d) => {
      if (!state) return;
      state.textContent = d.label;
      state.className = "badge state-" + d.state;
      if (d.terminal) {
        const cancel = document.getElementById("cancel-form");
        if (cancel) cancel.hidden = true;
      }
    };
    src.addEventListener("state", (e) => setState(JSON.parse(e.data)));
    src.addEventListener("event", (e) => {
      const d = JSON.parse(e.data);
      if (!events) return;
      const empty = events.querySelector(".empty-row");
      if (empty) empty.remove();
      const tr = document.createElement("tr");
      for (const v of [d.at, d.label, String(d.attempt), d.reason]) {
        const td = document.createElement("td");
        td.textContent = v;
        tr.appendChild(td);
      }
      events.appendChild(tr);
    });
    src.addEventListener("log", (e) => {
      const d = JSON.parse(e.data);
      if (!log) return;
      let text = log.textContent + d.text;
      if (text.length > MAX_LOG_CHARS) text = text.slice(text.length - MAX_LOG_CHARS);
      log.textContent = text;
      log.scrollTop = log.scrollHeight;
    });
    src.addEventListener("end", (e) => {
      setState(JSON.parse(e.data));
      if (status) status.textContent = status.getAttribute("data-ended") || "";
      src.close();
    });
    src.onerror = () => {
      // The browser reconnects by itself; say so instead of failing silently.
      if (status && src.readyState === EventSource.CONNECTING) status.textContent = status.getAttribute("data-reconnecting") || "";
    };
  }

  // Long forms (a simulation replay) say they are working and cannot be sent twice.
  for (const form of document.querySelectorAll("form[data-busy]")) {
    form.addEventListener("submit", () => {
      const button = form.querySelector("button[type=submit]");
      if (button) {
        button.disabled = true;
        button.textContent = form.getAttribute("data-busy");
      }
    });
  }
})();
