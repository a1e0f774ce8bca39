// aiplus console: a simulation run's page follows the run without reloading. It asks the run's
// JSON status once a second, moves the progress bars and texts (as text, never as HTML), and
// when the replay is done opens its report, or reloads to show why it failed. Without script
// the page still shows the state it was rendered with and a link to refresh it.
"use strict";

(function () {
  const run = document.querySelector("[data-sim-run]");
  if (!run || !window.fetch || run.getAttribute("data-state") !== "running") return;
  const url = "/sim/runs/" + encodeURIComponent(run.getAttribute("data-sim-run")) + "/status";
  const phase = document.getElementById("sim-phase");
  const refresh = document.getElementById("sim-refresh");
  const EVERY_MS = 1000;
  // A server that stopped answering (restarted, or the session ended) is asked for a while, not forever.
  const MAX_FAILURES = 60;
  let failures = 0;

  const show = (d) => {
    if (phase) phase.textContent = d.phase_label;
    for (const p of d.policies) {
      const bar = document.getElementById("sim-progress-" + p.name);
      if (bar && p.total > 0) {
        bar.max = p.total;
        bar.value = p.done;
        bar.textContent = p.text;
      }
      const text = document.getElementById("sim-text-" + p.name);
      if (text) text.textContent = p.text;
    }
  };

  const tick = async () => {
    let d;
    try {
      const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" });
      if (!r.ok) throw new Error("status " + r.status);
      d = await r.json();
    } catch (e) {
      failures += 1;
      if (failures < MAX_FAILURES) setTimeout(tick, EVERY_MS * 2);
      return;
    }
    failures = 0;
    show(d);
    if (d.state === "running") {
      setTimeout(tick, EVERY_MS);
    } else if (d.state === "finished" && d.report_url) {
      // Replace this page in the history: going back leads to the form, not to a finished run.
      window.location.replace(d.report_url);
    } else {
      window.location.reload();
    }
  };

  // The link is for browsers without script; this one keeps itself up to date.
  const link = refresh && refresh.querySelector("a");
  if (link) link.hidden = true;
  setTimeout(tick, EVERY_MS);
})();
