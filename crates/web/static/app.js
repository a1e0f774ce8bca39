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

  // Live jobs list: the server sends the rows again whenever one changes; they replace the
  // table's body, built from text (links are made here, not parsed from HTML).
  const liveList = document.querySelector("[data-live-jobs]");
  if (liveList && window.EventSource) {
    const body = liveList.querySelector("tbody");
    const src = new EventSource(liveList.getAttribute("data-live-jobs"));
    const cell = (tr, child, cls) => {
      const td = document.createElement("td");
      if (cls) td.className = cls;
      if (typeof child === "string") td.textContent = child;
      else td.appendChild(child);
      tr.appendChild(td);
    };
    const link = (href, text, code) => {
      const a = document.createElement("a");
      a.href = href;
      if (code) {
        const c = document.createElement("code");
        c.textContent = text;
        a.appendChild(c);
      } else a.textContent = text;
      return a;
    };
    src.addEventListener("jobs", (e) => {
      const rows = JSON.parse(e.data).rows || [];
      if (!body) return;
      const fresh = document.createDocumentFragment();
      for (const r of rows) {
        const tr = document.createElement("tr");
        tr.setAttribute("data-job", r.id);
        cell(tr, link("/jobs/" + encodeURIComponent(r.id), r.id, true));
        cell(tr, r.name);
        cell(tr, r.tenant);
        const badge = document.createElement("span");
        badge.className = "badge state-" + r.state;
        badge.textContent = r.state_label;
        cell(tr, badge);
        cell(tr, r.cluster ? link("/clusters/" + encodeURIComponent(r.cluster), r.cluster, false) : "—");
        cell(tr, r.gpus, "num");
        cell(tr, r.submitted);
        fresh.appendChild(tr);
      }
      if (rows.length === 0) {
        const tr = document.createElement("tr");
        tr.className = "empty-row";
        const td = document.createElement("td");
        td.colSpan = 7;
        td.className = "muted";
        td.textContent = liveList.getAttribute("data-empty") || "";
        tr.appendChild(td);
        fresh.appendChild(tr);
      }
      body.replaceChildren(fresh);
    });
  }

  // Live network overview: the job counts, GPUs busy and each cluster's changing cells.
  const liveNet = document.querySelector("[data-live-network]");
  if (liveNet && window.EventSource) {
    const src = new EventSource(liveNet.getAttribute("data-live-network"));
    const setText = (el, text) => {
      if (el && el.textContent !== text) el.textContent = text;
    };
    src.addEventListener("network", (e) => {
      const d = JSON.parse(e.data);
      setText(document.getElementById("jobs-queued"), String(d.queued));
      setText(document.getElementById("jobs-running"), String(d.running));
      setText(document.getElementById("gpus-busy"), d.gpus_busy);
      for (const c of d.clusters || []) {
        const circle = document.querySelector(`circle[data-cluster="${CSS.escape(c.id)}"]`);
        if (circle && circle.getAttribute("class") !== c.circle) circle.setAttribute("class", c.circle);
        const row = document.querySelector(`tr[data-cluster="${CSS.escape(c.id)}"]`);
        if (!row) continue;
        setText(row.querySelector("[data-cell=busy]"), c.busy);
        setText(row.querySelector("[data-cell=free]"), c.free);
        setText(row.querySelector("[data-cell=tariff]"), c.tariff);
        const badge = row.querySelector("[data-cell=health] .badge");
        if (badge) {
          setText(badge, c.health);
          badge.className = "badge " + (c.healthy ? "ok" : "hot");
        }
      }
    });
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

  // Agents playground: runs an agent on the Responses API (the server streams its events) and
  // shows each step as it happens: tool lists, calls with arguments and results, searches,
  // the answer as it is written, and the usage at the end.
  const play = document.querySelector("form[data-playground]");
  if (play && window.fetch && window.TextDecoder) {
    const steps = document.getElementById("play-steps");
    const answer = document.getElementById("play-answer");
    const usage = document.getElementById("play-usage");
    const label = (name) => play.getAttribute("data-label-" + name) || name;
    const MAX_SHOWN_CHARS = 2000;
    const cut = (t) => (t.length > MAX_SHOWN_CHARS ? t.slice(0, MAX_SHOWN_CHARS) + "…" : t);
    const step = (head, body, cls) => {
      const li = document.createElement("li");
      if (cls) li.className = cls;
      const strong = document.createElement("strong");
      strong.textContent = head;
      li.appendChild(strong);
      if (body) {
        const pre = document.createElement("pre");
        pre.textContent = cut(body);
        li.appendChild(pre);
      }
      steps.appendChild(li);
    };
    const shown = (item) => {
      switch (item.type) {
        case "mcp_list_tools":
          step(label("tools") + " " + item.server_label + ": " + (item.tools || []).map((t) => t.name).join(", "), item.error || "", item.error ? "failed" : "");
          break;
        case "mcp_call":
          step(label("call") + " " + item.server_label + "." + item.name + "(" + item.arguments + ")", item.error || item.output || "", item.error ? "failed" : "");
          break;
        case "file_search_call":
          step(label("search") + " " + JSON.stringify(item.queries),
            (item.results || []).map((r) => r.filename + " (" + Number(r.score).toFixed(3) + "): " + r.text).join("\n") || item.error || "",
            item.status === "completed" ? "" : "failed");
          break;
        case "function_call":
          step(label("client") + " " + item.name + "(" + item.arguments + ")", "");
          break;
        case "mcp_approval_request":
          step(label("approval") + " " + item.server_label + "." + item.name + "(" + item.arguments + ")", "");
          break;
      }
    };
    const handle = (e) => {
      if (e.type === "response.output_text.delta") answer.textContent += e.delta;
      else if (e.type === "response.output_item.done") shown(e.item);
      else if (e.type === "response.completed" || e.type === "response.incomplete" || e.type === "response.failed") {
        const r = e.response || {};
        const u = r.usage || {};
        let text = label("usage") + ": " + r.status + ", " + (u.input_tokens || 0) + " / " + (u.output_tokens || 0) + " tokens";
        if (r.incomplete_details) text += " (" + r.incomplete_details.reason + ")";
        if (r.error) text += " — " + r.error.message;
        usage.textContent = text;
      } else if (e.type === "error") usage.textContent = (e.error && e.error.message) || e.message || "error";
    };
    play.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const button = play.querySelector("button[type=submit]");
      const idle = button.textContent;
      button.disabled = true;
      button.textContent = play.getAttribute("data-running");
      steps.replaceChildren();
      answer.textContent = "";
      usage.textContent = "";
      try {
        const resp = await fetch(play.action, { method: "POST", body: new URLSearchParams(new FormData(play)), credentials: "same-origin" });
        if (!resp.ok || !resp.body) {
          usage.textContent = resp.status + ": " + (await resp.text()).replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim().slice(0, 300);
          return;
        }
        const reader = resp.body.getReader();
        const decoder = new TextDecoder();
        let buf = "";
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true });
          let at;
          while ((at = buf.indexOf("\n\n")) >= 0) {
            const frame = buf.slice(0, at);
            buf = buf.slice(at + 2);
            const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
            if (data && data !== "[DONE]") handle(JSON.parse(data));
          }
        }
      } catch (err) {
        usage.textContent = String(err);
      } finally {
        button.disabled = false;
        button.textContent = idle;
      }
    });
  }

  // Transparency log explorer: an entry's inclusion proof checked here, against the signed
  // checkpoint, with the log's public key: SHA-256 and Ed25519 from the browser's Web Crypto.
  const verifier = document.querySelector("[data-log-verify]");
  if (verifier) {
    const result = document.getElementById("verify-result");
    const say = (ok, text) => {
      result.textContent = text;
      result.className = ok === null ? "" : ok ? "verified" : "failed";
    };
    const run = (index) => verifyEntry(index).then(
      (r) => say(true, verifier.getAttribute("data-ok") + ": " + r),
      (e) => say(false, verifier.getAttribute("data-bad") + ": " + e.message),
    );
    document.getElementById("verify-button").addEventListener("click", () => {
      say(null, verifier.getAttribute("data-working"));
      run(document.getElementById("verify-index").value);
    });
    for (const b of document.querySelectorAll("button[data-verify-index]")) {
      b.addEventListener("click", () => {
        document.getElementById("verify-index").value = b.getAttribute("data-verify-index");
        say(null, verifier.getAttribute("data-working"));
        run(b.getAttribute("data-verify-index"));
      });
    }
    if (!(window.crypto && window.crypto.subtle)) say(false, verifier.getAttribute("data-nocrypto"));
  }

  function b64(s) {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function cat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const hex = (a) => Array.from(a, (x) => x.toString(16).padStart(2, "0")).join("");

  // RFC 9162 section 2.1.3.2: the root an inclusion proof leads to from a leaf hash.
  async function rootFrom(index, size, leafHash, proof) {
    let fn = BigInt(index);
    let sn = BigInt(size) - 1n;
    let r = leafHash;
    const one = new Uint8Array([1]);
    for (const p of proof) {
      if (sn === 0n) throw new Error("the proof is longer than the tree is deep");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await sha256(cat(one, p, r));
        if ((fn & 1n) === 0n) {
          while ((fn & 1n) === 0n && fn !== 0n) {
            fn >>= 1n;
            sn >>= 1n;
          }
        }
      } else {
        r = await sha256(cat(one, r, p));
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("the proof is shorter than the tree is deep");
    return r;
  }

  async function verifyEntry(indexText) {
    if (!(window.crypto && window.crypto.subtle)) throw new Error(verifier.getAttribute("data-nocrypto"));
    if (!/^[0-9]+$/.test(String(indexText))) throw new Error("not an entry index");
    const last = document.getElementById("verify-index").getAttribute("max");
    if (last !== null && BigInt(indexText) > BigInt(last)) throw new Error("entry " + indexText + " is past the tree's last entry, " + last);
    const get = async (url) => {
      const r = await fetch(url, { credentials: "omit" });
      if (!r.ok) throw new Error(url + ": " + r.status);
      return r;
    };
    // The log's public key: <name>+<key id, 8 hex>+<base64 of 0x01 and the Ed25519 key>.
    const keyText = (await (await get("/log/key")).text()).trim();
    // The key the page was rendered with: a server that changed its key since is caught here.
    const shown = document.getElementById("log-key");
    if (shown && shown.textContent.trim() !== keyText) throw new Error("the log's key is not the one this page shows");
    // The base64 may hold "+" too: only the first two separate the fields.
    const first = keyText.indexOf("+");
    const second = keyText.indexOf("+", first + 1);
    if (first < 0 || second < 0) throw new Error("the log key is not <name>+<id>+<key>");
    const [name, keyId, keyB64] = [keyText.slice(0, first), keyText.slice(first + 1, second), keyText.slice(second + 1)];
    const keyBytes = b64(keyB64);
    if (keyBytes.length !== 33 || keyBytes[0] !== 1) throw new Error("the log key is not an Ed25519 key");
    const enc = new TextEncoder();
    const idBytes = (await sha256(cat(enc.encode(name), new Uint8Array([10]), keyBytes))).slice(0, 4);
    if (hex(idBytes) !== keyId.toLowerCase()) throw new Error("the log key's id does not match the key");
    const doc = await (await get("/api/v1/log/proof?index=" + indexText)).json();
    if (String(doc.index) !== String(BigInt(indexText))) throw new Error("the server proved entry " + doc.index + ", not " + indexText);
    // The checkpoint, a signed note: its text, a blank line, then "— <name> <base64 sig>" lines.
    const split = doc.checkpoint.indexOf("\n\n");
    if (split < 0) throw new Error("the checkpoint is not a signed note");
    const text = doc.checkpoint.slice(0, split + 1);
    const lines = text.split("\n");
    const [origin, sizeText, rootB64] = lines;
    if (origin !== name) throw new Error("the checkpoint is of " + origin + ", not " + name);
    if (String(doc.size) !== sizeText) throw new Error("the proof is for another tree size than the checkpoint's");
    const sig = doc.checkpoint
      .slice(split + 2)
      .split("\n")
      .map((l) => l.match(/^\u2014 (\S+) (\S+)$/))
      .find((m) => m && m[1] === name);
    if (!sig) throw new Error("no signature by " + name);
    const sigBytes = b64(sig[2]);
    if (sigBytes.length !== 68 || !same(sigBytes.slice(0, 4), idBytes)) throw new Error("the signature is by another key");
    const key = await crypto.subtle.importKey("raw", keyBytes.slice(1), { name: "Ed25519" }, false, ["verify"]);
    const signed = await crypto.subtle.verify({ name: "Ed25519" }, key, sigBytes.slice(4), enc.encode(text));
    if (!signed) throw new Error("the checkpoint's signature does not verify");
    const leafHash = await sha256(cat(new Uint8Array([0]), enc.encode(doc.leaf)));
    const root = await rootFrom(doc.index, doc.size, leafHash, doc.proof.map(b64));
    if (!same(root, b64(rootB64))) throw new Error("the proof leads to another root than the checkpoint's");
    const leaf = JSON.parse(doc.leaf);
    return "#" + doc.index + " " + leaf.kind + " " + leaf.subject + " · " + doc.size + " · " + rootB64;
  }
  // Data exchange upload: hashes the file (its SHA-256 is its address), opens an upload, sends
  // the chunks the server is missing with a progress bar, then completes it. Asking again for
  // what is missing is what resumes an interrupted upload.
  const up = document.getElementById("data-upload");
  if (up && window.fetch) {
    const bar = document.getElementById("upload-progress");
    const status = document.getElementById("upload-status");
    const csrf = up.getAttribute("data-csrf");
    const hex = (buf) => Array.from(new Uint8Array(buf)).map((b) => b.toString(16).padStart(2, "0")).join("");
    const api = async (method, path, body, json) => {
      const headers = { "X-CSRF-Token": csrf };
      if (json) headers["Content-Type"] = "application/json";
      const r = await fetch(path, { method, headers, body: json ? JSON.stringify(body) : body, credentials: "same-origin" });
      const v = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(v.detail || String(r.status));
      return v;
    };
    up.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const file = document.getElementById("upload-file").files[0];
      if (!file) return;
      if (!(window.crypto && crypto.subtle)) {
        status.textContent = up.getAttribute("data-needs-https");
        return;
      }
      try {
        status.textContent = "SHA-256 …";
        const sha = hex(await crypto.subtle.digest("SHA-256", await file.arrayBuffer()));
        let u = await api("POST", "/api/v1/uploads", { sha256: sha, size_bytes: file.size, name: file.name }, true);
        while (u.state !== "complete" && u.missing.length) {
          for (const ix of u.missing) {
            const part = file.slice(ix * u.chunk_bytes, Math.min(file.size, (ix + 1) * u.chunk_bytes));
            u = await api("PUT", "/api/v1/uploads/" + u.id + "/chunks/" + ix, part, false);
            bar.value = Math.round((100 * u.received) / u.chunks);
          }
        }
        u = await api("POST", "/api/v1/uploads/" + u.id + "/complete", null, false);
        bar.value = 100;
        status.textContent = up.getAttribute("data-done") + " " + u.sha256;
      } catch (e) {
        status.textContent = String(e.message || e);
      }
    });
  }
})();
