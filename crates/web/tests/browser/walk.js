// The console in a real browser: Debian's Chromium, driven headless by playwright-core.
//
// Run by crates/aiplus/tests/console_browser.rs against a real `aiplus serve`, with
//   AIPLUS_URL             the server's base URL
//   AIPLUS_ADMIN_PASSWORD  the first operator's password
//   AIPLUS_ARTIFACTS       where screenshots go
//   AIPLUS_BIN, AIPLUS_TOKEN  the CLI and an operator token, to submit a job from outside the browser
// It logs in, walks every page in both languages, submits a job and watches it finish live,
// creates and revokes an API key (and uses it through the gateway), runs a small simulation
// and checks its charts, and checks tenant isolation by URL, CSRF, keyboard use and axe-core's
// WCAG A/AA rules. Any console error, page error or failed request fails the run.
"use strict";

const fs = require("fs");
const path = require("path");
const assert = require("assert/strict");
const { chromium } = require("playwright-core");
const { execFileSync } = require("child_process");

const BASE = process.env.AIPLUS_URL;
const ADMIN_PW = process.env.AIPLUS_ADMIN_PASSWORD;
const OUT = process.env.AIPLUS_ARTIFACTS || "console-screenshots";
const AXE = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const TENANT_PW = "acme-password-123";

const problems = [];
let shots = 0;

function watch(page, who) {
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`${who} console: ${m.text()} (${page.url()})`);
  });
  page.on("pageerror", (e) => problems.push(`${who} pageerror: ${e.message} (${page.url()})`));
  page.on("requestfailed", (r) => {
    // Leaving a live page aborts its event stream; that is the browser's doing, not an error.
    const aborted = (r.failure() || {}).errorText === "net::ERR_ABORTED";
    if (!(aborted && r.url().includes("/live"))) problems.push(`${who} request failed: ${r.url()} ${(r.failure() || {}).errorText}`);
  });
}

async function shot(page, name) {
  shots += 1;
  await page.screenshot({ path: path.join(OUT, `${String(shots).padStart(2, "0")}-${name}.png`), fullPage: true });
}

// axe-core's WCAG 2 A and AA rules; serious and critical findings fail the run.
async function axe(page, name) {
  await page.evaluate(AXE);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa"] } });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 3) }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(bad, [], `axe on ${name}: ${JSON.stringify(bad)}`);
}

async function h1(page) {
  return (await page.locator("h1").innerText()).trim();
}

async function login(page, user, password) {
  await page.goto(BASE + "/");
  assert.match(page.url(), /\/login\?next=/, "an anonymous visit goes to the login form");
  await page.locator("#username").fill(user);
  await page.locator("#password").fill(password);
  await Promise.all([page.waitForNavigation(), page.locator("form button[type=submit]").click()]);
}

async function gateway(secret, expectStatus) {
  const r = await fetch(BASE + "/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "qwen", messages: [{ role: "user", content: "hi from the browser test" }] }),
  });
  assert.equal(r.status, expectStatus, `gateway call with the key: ${await r.text()}`);
}

(async () => {
  fs.mkdirSync(OUT, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--disable-gpu", "--disable-quic", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  try {
    // ---- the operator, in a browser that prefers Chinese ----
    const ctx = await browser.newContext({ locale: "zh-CN", viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    watch(page, "operator");

    // A wrong password is refused with a message, in Chinese.
    await page.goto(BASE + "/login");
    assert.equal(await page.locator("html").getAttribute("lang"), "zh-CN", "the browser's language decides");
    assert.equal(await page.getByLabel("用户名").count(), 1, "inputs have labels");
    await page.getByLabel("用户名").fill("admin");
    await page.getByLabel("密码").fill("not-the-password");
    await page.locator("form button[type=submit]").click();
    await page.waitForSelector("#login-error");
    assert.match(await page.locator("#login-error").innerText(), /错误/);
    await shot(page, "login-zh");

    await login(page, "admin", ADMIN_PW);
    assert.equal(await h1(page), "算力网络");
    assert.equal(await page.locator("svg.china-map a[href^='/clusters/']").count(), 10, "ten clusters on the map");
    assert.equal(await page.locator("svg.china-map line.link").count(), 28, "28 links between the 8 hubs");
    assert.equal(await page.locator("table[aria-labelledby=hubs-heading] tbody tr").count(), 10);
    await shot(page, "network-zh");
    await axe(page, "network (zh)");

    // ---- the Action's targets: measured figures, and one entered by the operator ----
    await page.goto(BASE + "/targets");
    assert.equal(await h1(page), "行动目标");
    assert.ok((await page.locator("#measured tbody tr").count()) >= 8, "the measured indicators are listed");
    await page.getByLabel("指标", { exact: true }).fill("全国智能体普及率");
    await page.getByLabel("数值", { exact: true }).fill("55.5");
    await page.getByLabel("单位", { exact: true }).fill("%");
    await page.getByLabel("日期", { exact: true }).fill("2025-06-30");
    await page.getByLabel("来源", { exact: true }).fill("调查报告, 2025");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "录入" }).click()]);
    assert.match(await page.locator("#entered").innerText(), /全国智能体普及率/);
    assert.doesNotMatch(await page.locator("#measured").innerText(), /全国智能体普及率/);
    await shot(page, "targets-zh");
    await axe(page, "targets (zh)");
    await page.goto(BASE + "/");

    // Keyboard: the first Tab reaches the skip link, and it moves focus to the main content.
    await page.reload();
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.className), "skip");
    await page.keyboard.press("Enter");
    assert.equal(await page.evaluate(() => document.activeElement.id), "main");
    // Tab on to the navigation and open Jobs with the keyboard alone (a fresh document: the
    // skip link left "#main" in the URL, where a reload would start the focus order).
    await page.goto(BASE + "/");
    let reached = false;
    for (let i = 0; i < 8 && !reached; i++) {
      await page.keyboard.press("Tab");
      reached = (await page.evaluate(() => document.activeElement.getAttribute("href"))) === "/jobs";
    }
    assert.ok(reached, "the Jobs link is reachable by Tab");
    await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
    assert.equal(new URL(page.url()).pathname, "/jobs");

    // Switch to English; the choice sticks.
    await Promise.all([page.waitForNavigation(), page.getByRole("link", { name: "English" }).click()]);
    assert.equal(await page.locator("html").getAttribute("lang"), "en");
    assert.equal(await h1(page), "Jobs");
    await page.goto(BASE + "/");
    assert.equal(await h1(page), "Compute network");
    await shot(page, "network-en");
    await page.goto(BASE + "/targets");
    assert.equal(await h1(page), "Action targets");
    assert.match(await page.locator("#entered").innerText(), /55\.50/);
    assert.ok((await page.locator("svg.chart").count()) >= 2, "trend charts are drawn");
    await shot(page, "targets-en");
    await axe(page, "targets (en)");
    const csv = await page.request.get(BASE + "/targets.csv");
    assert.equal(csv.status(), 200);
    assert.match(csv.headers()["content-disposition"], /^attachment/);
    const csvText = await csv.text();
    assert.ok(csvText.startsWith("kind,indicator,name,period,value,unit,definition,source"), csvText.slice(0, 200));
    assert.match(csvText, /entered,,全国智能体普及率,2025-06-30,55\.5,%,Entered by an operator,"调查报告, 2025"/);

    // ---- tenants are a registry: "other" is registered here before anything names it ----
    await page.goto(BASE + "/tenants");
    await page.getByLabel("Tenant id").fill("other");
    await page.getByLabel("Tenant name").fill("Other Co.");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Register a tenant" }).click()]);
    assert.equal(new URL(page.url()).pathname, "/tenants/other", "a registered tenant opens its page");

    // ---- jobs: a job for another tenant (for the isolation checks), then one to watch ----
    await page.goto(BASE + "/jobs");
    await page.getByLabel("Name").fill("other-tenant-job");
    await page.getByLabel("Tenant").first().fill("other");
    await page.getByLabel("Command (one argument per line)").fill("sh\n-c\necho secret-of-other");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Submit" }).click()]);
    const otherJob = new URL(page.url()).pathname;
    assert.match(otherJob, /^\/jobs\/job_/);

    // A bad field is named and the form keeps what was typed.
    await page.goto(BASE + "/jobs");
    await page.getByLabel("Tenant").first().fill("acme");
    await page.getByLabel("Name").fill("typo-job");
    await page.getByLabel("Command (one argument per line)").fill("true");
    await page.getByLabel("GPUs", { exact: true }).fill("99");
    await page.locator("#job-gpus").evaluate((e) => e.removeAttribute("max"));
    await page.getByRole("button", { name: "Submit" }).click();
    await page.waitForSelector("#submit-error");
    assert.match(await page.locator("#submit-error").innerText(), /gpus/);
    assert.equal(await page.getByLabel("Name").inputValue(), "typo-job");

    await page.goto(BASE + "/jobs");
    await page.getByLabel("Name").fill("browser-job");
    await page.getByLabel("Tenant").first().fill("acme");
    await page.getByLabel("Command (one argument per line)").fill("sh\n-c\necho hello from the browser; sleep 2; echo finished now");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Submit" }).click()]);
    const jobPath = new URL(page.url()).pathname;
    await page.evaluate(() => (window.__stayed = true));
    // State and logs arrive live: the same document (no reload) ends up showing both.
    await page.waitForFunction(() => document.getElementById("job-state").textContent === "succeeded", null, { timeout: 60_000 });
    await page.waitForFunction(() => document.getElementById("job-log").textContent.includes("finished now"), null, { timeout: 10_000 });
    assert.equal(await page.evaluate(() => window.__stayed), true, "updated without reloading");
    assert.ok((await page.locator("#job-events tbody tr").count()) >= 4, "lifecycle events listed");
    assert.equal(await page.locator("tr.chosen").count(), 1, "the chosen cluster is marked in the explanation");
    const cluster = await page.locator("tr.chosen a").getAttribute("href");
    await shot(page, "job");
    await axe(page, "job");

    // The cluster the job ran on, with its chart and tables.
    await page.goto(BASE + cluster);
    assert.match(await h1(page), /^Cluster · /);
    assert.equal(await page.locator("svg.chart").count(), 1);
    assert.ok((await page.locator("table[aria-labelledby=pools-heading] tbody tr").count()) >= 1);
    await shot(page, "cluster");
    await axe(page, "cluster");

    // Filters: succeeded jobs of acme include ours; failed ones do not.
    await page.goto(BASE + "/jobs?state=succeeded&tenant=acme");
    assert.equal(await page.locator(`a[href='${jobPath}']`).count(), 1);
    await page.goto(BASE + "/jobs?state=failed&tenant=acme");
    assert.equal(await page.locator(`a[href='${jobPath}']`).count(), 0);
    await axe(page, "jobs");
    await page.goto(BASE + "/jobs");
    await shot(page, "jobs");

    // The open jobs list is live: a job submitted from the CLI shows up without a reload.
    await page.evaluate(() => (window.__stayed = true));
    const submitted = execFileSync(process.env.AIPLUS_BIN, ["jobs", "submit", "--json", "--tenant", "acme", "--kind", "batch_inference",
      "--gpus", "0", "--cpu-milli", "100", "--memory-mib", "64", "--duration-s", "5", "--name", "from-the-cli", "--", "true"], {
      env: { ...process.env, AIPLUS_SERVER: BASE },
    }).toString();
    const cliJob = JSON.parse(submitted).id;
    await page.waitForSelector(`[data-live-jobs] a[href='/jobs/${cliJob}']`, { timeout: 15_000 });
    assert.equal(await page.evaluate(() => window.__stayed), true, "the list updated without reloading");
    await axe(page, "jobs-live");

    // ---- simulation ----
    await page.goto(BASE + "/sim");
    // A 20,000-job replay runs in the background: its page shows a bar per policy, the operator
    // browses elsewhere, comes back from the index, and the page opens the report when done.
    await page.getByLabel("Jobs", { exact: true }).fill("20000");
    await page.getByLabel("Nodes", { exact: true }).fill("600");
    await axe(page, "sim");
    await Promise.all([page.waitForURL(/\/sim\/runs\/run_/), page.getByRole("button", { name: "Run" }).click()]);
    const runPath = new URL(page.url()).pathname;
    assert.equal(await page.locator("progress").count(), 4, "a bar per policy");
    await shot(page, "sim-run");
    await page.goto(BASE + "/jobs");
    await page.goto(BASE + "/");
    await page.goto(BASE + "/sim");
    assert.equal(await page.locator(`a[href='${runPath}']`).count(), 1, "the index lists the run");
    await page.goto(BASE + runPath);
    if ((await page.locator("[data-sim-run]").getAttribute("data-state")) === "running") {
      // The bars move while it runs (the simulator reports every 4,096 jobs).
      await page.waitForFunction(() => [...document.querySelectorAll("progress")].some((p) => p.value > 0), null, { timeout: 300_000 });
      await page.waitForURL(/\/sim\/sim_/, { timeout: 600_000 });
    } else {
      await axe(page, "sim run");
      await Promise.all([page.waitForNavigation(), page.locator("#sim-report-link").click()]);
    }
    assert.match(new URL(page.url()).pathname, /^\/sim\/sim_/);
    assert.equal(await page.locator("#policy-table tbody tr").count(), 5, "four policies and the lower bound");
    await page.waitForFunction(() => {
      const img = document.querySelector("figure img");
      return img && img.complete && img.naturalWidth > 0;
    });
    assert.equal(await page.locator("svg.chart rect[fill]").count() > 4, true, "the policy chart has bars");
    await shot(page, "sim-report");
    await axe(page, "sim report");

    // ---- tenants: a login for acme, a key shown once, used, revoked ----
    await page.goto(BASE + "/tenants");
    await page.getByRole("textbox", { name: "Username", exact: true }).fill("acme-user");
    await page.getByLabel("Password", { exact: true }).fill(TENANT_PW);
    await page.getByRole("textbox", { name: "Tenant", exact: true }).fill("acme");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Create a login for a tenant" }).click()]);
    await axe(page, "tenants");
    await shot(page, "tenants");
    await page.goto(BASE + "/tenants/acme");
    await page.getByLabel("Requests per minute").first().fill("100");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Create a key" }).click()]);
    const secret = (await page.locator("#new-secret-value").innerText()).trim();
    assert.match(secret, /^ak_[0-9a-f]{64}$/);
    await shot(page, "key-created");
    await page.goto(BASE + "/tenants/acme");
    assert.equal(await page.locator("#new-secret").count(), 0, "the secret is shown once");
    assert.equal(await page.content().then((h) => h.includes(secret)), false);
    await gateway(secret, 200);
    await gateway(secret, 200);

    // Models: the requests just made show up (the ledger is written in batches).
    let seen = false;
    for (let i = 0; i < 40 && !seen; i++) {
      await page.goto(BASE + "/models");
      const row = page.locator("table[aria-labelledby=models-heading] tbody tr", { hasText: "qwen" });
      // Two made here, and the agent run's one step (made before the walk).
      seen = (await row.locator("td.num").first().innerText()) === "3";
      if (!seen) await page.waitForTimeout(250);
    }
    assert.ok(seen, "three requests of qwen on the models page");
    await shot(page, "models");
    await axe(page, "models");

    await page.goto(BASE + "/tenants/acme");
    const keyId = await page.locator("tr[data-key]").first().getAttribute("data-key");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: `Revoke ${keyId}` }).click()]);
    assert.equal(await page.locator(`tr[data-key='${keyId}'] .badge`).innerText(), "revoked");
    await gateway(secret, 401);
    await shot(page, "tenant-usage");
    await axe(page, "tenant");

    // CSRF: a form post with a wrong token is refused and changes nothing.
    // (Sent with the context's cookies but outside the page, so the expected 403 is not a
    // console error of the page.)
    const forged = await page.request.post(BASE + "/tenants/acme/keys", { form: { csrf: "forged" } });
    const csrf = forged.status();
    const crossSite = await page.request.post(BASE + "/tenants/acme/keys", {
      form: { csrf: "forged" },
      headers: { origin: "https://evil.example" },
    });
    assert.equal(crossSite.status(), 403, "a post from another origin is refused");
    assert.equal(csrf, 403);
    assert.equal(await page.locator("tr[data-key]").count(), 1, "no key was made by the forged post");

    // Governance: suspend a model in one click, with a reason; then the log explorer checks the
    // change's entry in this browser against the signed checkpoint; then activate it again.
    await page.goto(BASE + "/governance");
    assert.equal(await h1(page), "Governance");
    const qwenRow = page.locator("tr[data-model='qwen']");
    await qwenRow.getByLabel("Reason qwen").fill("suspended from the console");
    await Promise.all([page.waitForNavigation(), qwenRow.getByRole("button", { name: "Suspend qwen" }).click()]);
    assert.equal(await page.locator("tr[data-model='qwen'] .badge").innerText(), "suspended");
    await shot(page, "governance");
    await axe(page, "governance");
    // Two more changes, so the tree has entries whose proofs have more than one step.
    for (const [button, reason] of [["Activate qwen", "a second look"], ["Suspend qwen", "a third look"]]) {
      await page.locator("tr[data-model='qwen']").getByLabel("Reason qwen").fill(reason);
      await Promise.all([page.waitForNavigation(), page.locator("tr[data-model='qwen']").getByRole("button", { name: button }).click()]);
    }
    await Promise.all([page.waitForNavigation(), page.getByRole("link", { name: "Transparency log explorer" }).click()]);
    const rows = page.locator("tbody button[data-verify-index]");
    assert.equal(await rows.count(), 3);
    for (let i = 0; i < 3; i++) {
      await page.evaluate(() => { document.getElementById("verify-result").className = ""; });
      await rows.nth(i).click();
      await page.waitForSelector("#verify-result.verified, #verify-result.failed");
      const verdict = await page.locator("#verify-result").innerText();
      assert.match(verdict, /^Verified: #\d+ model\.(suspended|active) model\/qwen · 3 · /, verdict);
    }
    // An entry past the tree's end is not verified.
    await page.locator("#verify-index").fill("999999");
    await page.getByRole("button", { name: "Verify in this browser" }).first().click();
    await page.waitForSelector("#verify-result.failed");
    await shot(page, "log-explorer");
    await axe(page, "log explorer");
    await page.goto(BASE + "/governance");
    await page.locator("tr[data-model='qwen']").getByLabel("Reason qwen").fill("checked");
    await Promise.all([page.waitForNavigation(), page.locator("tr[data-model='qwen']").getByRole("button", { name: "Activate qwen" }).click()]);
    assert.equal(await page.locator("tr[data-model='qwen'] .badge").innerText(), "active");

    // Evaluation: a run started from the console is run by the server through its gateway;
    // its page shows the report and chart once done.
    await page.goto(BASE + "/evaluation");
    assert.equal(await h1(page), "Evaluation");
    await page.getByLabel("Model", { exact: true }).fill("qwen");
    await page.getByLabel("Suite").selectOption("safetybench-zh");
    await page.getByLabel("Subjects (comma-separated)").fill("Offensiveness");
    await page.getByLabel("At most items per subject").fill("3");
    await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Run", exact: true }).click()]);
    assert.match(new URL(page.url()).pathname, /^\/evaluation\/runs\/evr_/);
    for (let i = 0; i < 150 && (await page.locator("dd", { hasText: "succeeded" }).count()) === 0; i++) {
      await page.waitForTimeout(200);
      await page.reload();
    }
    assert.equal(await page.locator("dd", { hasText: "succeeded" }).count(), 1, "the run finished");
    assert.equal(await page.locator("figure svg").count(), 1, "the report's chart");
    assert.match(await page.locator("tbody").innerText(), /攻击冒犯/);
    await shot(page, "eval-run");
    await axe(page, "evaluation run");
    await page.goto(BASE + "/evaluation");
    assert.equal(await page.locator("a[href^='/evaluation/runs/evr_']").count(), 1, "the run is listed");
    await shot(page, "evaluation");
    await axe(page, "evaluation");

    // Agents: every tenant's, with their tools, and the runs of the last day.
    await page.goto(BASE + "/agents");
    assert.equal(await h1(page), "Agents");
    assert.match(await page.locator("table").first().innerText(), /agent:helper[\s\S]*agentco[\s\S]*fn:lookup/);
    assert.match(await page.locator("table").nth(1).innerText(), /resp_[0-9a-f]+\s+\S+\s+agentco\s+\S+ \S+\s+1\s+0/, "its run: one step, no tool call");
    await shot(page, "agents");
    await axe(page, "agents");

    // The data exchange: the catalogue, and a dataset's page with its valuation charts.
    await page.goto(BASE + "/data");
    assert.equal(await h1(page), "Data");
    assert.match(await page.locator("table").first().innerText(), /credit[\s\S]*acme[\s\S]*1\.0\.0[\s\S]*CC-BY-4\.0[\s\S]*500/);
    await axe(page, "data");
    await page.goto(BASE + "/data/acme/credit");
    assert.equal(await page.locator("svg.chart").count(), 2, "value per contributor and the distribution");
    assert.match(await page.locator("main").innerText(), /江南研究所/);
    await shot(page, "data-dataset");
    await axe(page, "dataset");

    // ---- a tenant's view: only its own things, whatever the URL ----
    const tctx = await browser.newContext({ locale: "en-US", viewport: { width: 1280, height: 900 } });
    const tpage = await tctx.newPage();
    watch(tpage, "tenant");
    await login(tpage, "acme-user", TENANT_PW);
    await tpage.goto(BASE + "/jobs");
    assert.equal(await tpage.locator(`a[href='${jobPath}']`).count(), 1, "acme sees its job");
    assert.equal(await tpage.locator(`a[href='${otherJob}']`).count(), 0, "acme does not see other's job");
    await tpage.goto(BASE + "/jobs?tenant=other");
    assert.equal(await tpage.locator(`a[href='${otherJob}']`).count(), 0, "a tenant filter in the URL does not widen the view");
    for (const url of [otherJob, "/tenants/other", "/jobs/" + otherJob.split("/")[2] + "/live"]) {
      const r = await tpage.request.get(BASE + url);
      assert.equal(r.status(), 404, `${url} is not found for acme`);
    }
    assert.equal((await tpage.request.get(BASE + "/sim")).status(), 403, "simulations are for operators");
    assert.equal((await tpage.request.get(BASE + "/sim/runs/run_x")).status(), 403, "and so are their runs");
    assert.equal((await tpage.request.get(BASE + "/evaluation")).status(), 403, "evaluation is for operators");
    await tpage.goto(BASE + "/agents");
    assert.doesNotMatch(await tpage.locator("main").innerText(), /agent:helper|agentco|resp_/, "acme sees no other tenant's agent or run");
    // Declaring an agent in the console: a bad declaration is refused naming its field and
    // the form keeps it; a good one is listed.
    const guide = { model: "script", tools: [{ type: "file_search", collection_ids: ["kb"] }] };
    await tpage.getByLabel("Agent id").fill("guide");
    await tpage.getByLabel("Declaration (JSON)").fill(JSON.stringify({ ...guide, limits: { max_steps: 0 } }));
    await tpage.getByRole("button", { name: "Save" }).click();
    await tpage.waitForSelector("#declare-error");
    assert.match(await tpage.locator("#declare-error").innerText(), /limits\.max_steps/);
    assert.match(await tpage.getByLabel("Declaration (JSON)").inputValue(), /max_steps/);
    await tpage.getByLabel("Declaration (JSON)").fill(JSON.stringify(guide));
    await Promise.all([tpage.waitForNavigation(), tpage.getByRole("button", { name: "Save" }).click()]);
    assert.match(await tpage.locator("table").first().innerText(), /agent:guide[\s\S]*file_search:kb/);
    // "Change" opens the form on the agent's declaration.
    await Promise.all([tpage.waitForNavigation(), tpage.getByRole("link", { name: "Change" }).click()]);
    assert.equal(await tpage.getByLabel("Agent id").inputValue(), "guide");
    assert.match(await tpage.getByLabel("Declaration (JSON)").inputValue(), /"collection_ids": \[\s*"kb"\s*\]/);
    // The playground streams the run's steps: the search with its results, then the answer.
    await tpage.getByLabel("Agent", { exact: true }).selectOption("acme/guide");
    await tpage.getByLabel("Message").fill('call file_search {"query": "算力网络"}');
    await tpage.getByRole("button", { name: "Run" }).click();
    await tpage.waitForFunction(() => /completed/.test(document.getElementById("play-usage").textContent), null, { timeout: 30_000 });
    assert.match(await tpage.locator("#play-steps").innerText(), /Search \["算力网络"\][\s\S]*plan\.md \([0-9.]+\): 全国一体化算力网络/);
    assert.match(await tpage.locator("#play-answer").innerText(), /^done: /);
    // Another tenant's agent is not found, even with this session's own CSRF token.
    const tcsrf = await tpage.locator("form[data-playground] input[name=csrf]").inputValue();
    const snoop = await tpage.request.post(BASE + "/agents/playground", { form: { csrf: tcsrf, agent: "agentco/helper", input: "hi" } });
    assert.equal(snoop.status(), 404, "another tenant's agent cannot be run from the playground");
    await shot(tpage, "agents-playground");
    await axe(tpage, "agents playground");
    // Uploading a file from the data page: hashed, sent in chunks, completed, with progress.
    await tpage.goto(BASE + "/data");
    await tpage.getByLabel("File", { exact: true }).setInputFiles({ name: "rows.csv", mimeType: "text/csv", buffer: Buffer.from("a,b\n1,2\n") });
    await tpage.getByRole("button", { name: "Upload" }).click();
    await tpage.waitForFunction(() => /Uploaded, SHA-256 [0-9a-f]{64}/.test(document.getElementById("upload-status").textContent), null, { timeout: 30_000 });
    assert.equal(await tpage.locator("#upload-progress").getAttribute("value"), "100");
    await shot(tpage, "data-upload");
    await axe(tpage, "data (tenant)");
    assert.equal((await tpage.request.get(BASE + "/data/agentco/secret")).status(), 404, "another tenant's unlisted dataset is not found");
    await tpage.goto(BASE + "/governance");
    assert.equal(await tpage.locator("#states-heading").count(), 0, "model states are for operators");
    const suspend = await tpage.request.post(BASE + "/governance/models/qwen", { form: { csrf: "x", status: "suspended", reason: "r" } });
    assert.equal(suspend.status(), 403, "a tenant cannot suspend a model");
    await tpage.goto(BASE + "/tenants");
    assert.equal(new URL(tpage.url()).pathname, "/tenants/acme", "a tenant's tenants page is its own");
    await tpage.goto(BASE + jobPath);
    assert.match(await tpage.locator("#job-log").innerText(), /finished now/);
    await shot(tpage, "tenant-job");

    // Logging out ends the session.
    await Promise.all([tpage.waitForNavigation(), tpage.getByRole("button", { name: "Log out" }).click()]);
    await tpage.goto(BASE + "/jobs");
    assert.match(tpage.url(), /\/login/);

    // The deliberate 403s and 404s above went through the request API, not the page, so any
    // problem left here is a real one.
    assert.deepEqual(problems, [], "the browser reported problems");
    console.log(`console walk: ok (${shots} screenshots in ${OUT})`);
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  if (problems.length) console.error("browser problems:\n" + problems.join("\n"));
  process.exit(1);
});
