//! `aiplus agents bench`: what the agent loop itself adds to each step, beyond the model's and
//! the tools' own time. The model is a zero-delay double (it answers each step at once, asking
//! for one tool call per step until the last); the tool is a zero-delay MCP server on loopback
//! (stateless 2026-07-28, one `echo` tool); tool calls are recorded in a real usage ledger on
//! a SQLite store in a temporary directory. The tool's own time is measured by calling it
//! directly, and subtracted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agents::run::{BoxFuture, InMemory, Model, State, StepError};
use anyhow::Context;
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Runs to time (after 20 warm-up runs).
    #[arg(long, default_value_t = 500)]
    runs: usize,
    /// Tool calls per run; each run has one model step more than tool calls.
    #[arg(long, default_value_t = 8)]
    calls: u32,
    /// Stream the runs, as for a client listening: each step is asked streamed (the last one
    /// writes its answer in 4 pieces) and every event goes through the stream's channel.
    #[arg(long)]
    stream: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Answers step n < calls + 1 with a call of `t__echo`, the last with a message; zero delay.
struct Double {
    calls: u32,
}

impl Model for Double {
    fn respond(&self, step_id: String, _body: Value) -> BoxFuture<Result<Value, StepError>> {
        let n: u32 = step_id.rsplit('/').next().and_then(|n| n.parse().ok()).unwrap_or(1);
        let item = if n <= self.calls {
            json!({"type": "function_call", "id": format!("fc_{n}"), "call_id": format!("call_{n}"), "name": "t__echo", "arguments": "{\"text\":\"x\"}", "status": "completed"})
        } else {
            json!({"type": "message", "id": "msg_1", "role": "assistant", "status": "completed", "content": [{"type": "output_text", "text": "done", "annotations": []}]})
        };
        Box::pin(async move { Ok(json!({"output": [item], "usage": {"input_tokens": 1, "output_tokens": 1}})) })
    }

    /// The same answers, the last one's text first sent in pieces, as a streaming model would.
    fn respond_streaming(
        &self,
        step_id: String,
        body: Value,
        deltas: tokio::sync::mpsc::Sender<String>,
    ) -> BoxFuture<Result<Value, StepError>> {
        let last = step_id.rsplit('/').next().and_then(|n| n.parse::<u32>().ok()).unwrap_or(1) > self.calls;
        let answer = self.respond(step_id, body);
        Box::pin(async move {
            if last {
                for piece in ["d", "o", "n", "e"] {
                    let _ = deltas.send(piece.to_string()).await;
                }
            }
            answer.await
        })
    }
}

/// A zero-delay MCP server (stateless 2026-07-28) with one tool, on a free loopback port.
async fn mcp_double() -> anyhow::Result<String> {
    async fn rpc(axum::Json(req): axum::Json<Value>) -> axum::Json<Value> {
        let result = match req["method"].as_str() {
            Some("tools/list") => json!({"tools": [{"name": "echo", "description": "Echo.", "inputSchema": {"type": "object"}}]}),
            _ => json!({"content": [{"type": "text", "text": "ok"}], "isError": false}),
        };
        axum::Json(json!({"jsonrpc": "2.0", "id": req["id"], "result": result}))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new().route("/mcp", axum::routing::post(rpc))).await;
    });
    Ok(format!("http://{addr}/mcp"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0)
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!((1..=agents::spec::MAX_STEPS - 1).contains(&args.calls), "--calls: 1 to {}", agents::spec::MAX_STEPS - 1);
    anyhow::ensure!((1..=1_000_000).contains(&args.runs), "--runs: 1 to 1000000");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(bench(&args))
}

async fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    let url = mcp_double().await?;
    let dir = std::env::temp_dir().join(format!("aiplus-agents-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = store::Store::open(&dir).await.context("opening the bench's store")?;
    let (meter, writer) = agents::usage::Meter::start(store.clone(), gateway::meter::FLUSH_EVERY);
    let clock: Arc<dyn vocab::Clock> = Arc::new(jobs::SystemClock);
    let spec: agents::AgentSpec = serde_json::from_value(json!({"model": "double", "limits": {"max_steps": args.calls + 1},
        "tools": [{"type": "mcp", "server_label": "t", "server_url": url, "require_approval": "never"}]}))?;
    let agent = agents::Agent { tenant: "bench".into(), id: "bench".into(), version: 1, created_ms: 0, spec };
    let http = outbound::client(true, Duration::from_secs(5)).build()?;
    let recorder =
        agents::usage::LedgerRecorder { meter, clock, tenant: "bench".into(), principal: "bench".into(), agent: "agent:bench@1".into() };
    let deps = agents::run::Deps {
        model: Arc::new(Double { calls: args.calls }),
        http: http.clone(),
        recorder: Arc::new(recorder),
        guard: None,
        ids: Arc::new(|p: &str| format!("{p}_{}", uuid::Uuid::now_v7().simple())),
        hosts: agents::service::HostRule { allowed_hosts: vec!["127.0.0.1".into()], allow_local: true, allow_stdio: false },
        spawner: None,
        approvals: Arc::new(agents::run::MemoryApprovals::default()),
        search: None,
        stream_steps: true,
    };
    // The tool's own time, called directly with the same client.
    let server = agent.spec.mcp_servers().next().cloned().context("the bench agent has its server")?;
    let direct = agents::mcp::Client::new(http, server);
    let mut tool_us = Vec::new();
    for i in 0..(args.runs * args.calls as usize).min(5000) + 50 {
        let t = Instant::now();
        direct.call_tool("echo", json!({"text": "x"}), Duration::from_secs(5)).await?;
        if i >= 50 {
            tool_us.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let tool_mean_us = tool_us.iter().sum::<f64>() / tool_us.len().max(1) as f64;
    let list_us = {
        let t = Instant::now();
        for _ in 0..200 {
            direct.list_tools(Duration::from_secs(5)).await?;
        }
        t.elapsed().as_secs_f64() * 1e6 / 200.0
    };
    let options = serde_json::Map::new();
    let mut per_step_us = Vec::new();
    let bar = indicatif::ProgressBar::new((args.runs + 20) as u64);
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    for i in 0..args.runs + 20 {
        let user = vec![json!({"type": "message", "role": "user", "content": "go"})];
        let t = Instant::now();
        // A listening client's stream: a channel drained as fast as events come.
        let events = args.stream.then(|| {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(64);
            tokio::spawn(async move { while rx.recv().await.is_some() {} });
            tx
        });
        let s = agents::run::run(&agent, &deps, &format!("resp_bench_{i}"), State::new(vec![], user), &options, events, &InMemory).await;
        let wall_us = t.elapsed().as_secs_f64() * 1e6;
        anyhow::ensure!(s.status == Some(agents::run::Status::Completed), "a bench run ended {:?}", s.status);
        bar.inc(1);
        if i >= 20 {
            let tools_us = tool_mean_us * f64::from(args.calls) + list_us;
            per_step_us.push((wall_us - tools_us).max(0.0) / f64::from(s.steps));
        }
    }
    bar.finish_and_clear();
    drop(deps);
    let _ = writer.await;
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    per_step_us.sort_by(f64::total_cmp);
    let report = json!({
        "runs": args.runs, "tool_calls_per_run": args.calls, "model_steps_per_run": args.calls + 1, "streamed": args.stream,
        "tool_call_direct_us_mean": tool_mean_us, "list_tools_direct_us_mean": list_us,
        "loop_overhead_us_per_step": {"p50": percentile(&per_step_us, 0.5), "p99": percentile(&per_step_us, 0.99), "max": percentile(&per_step_us, 1.0)},
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "agent loop overhead per step ({} {}runs of {} model steps and {} tool calls, zero-delay doubles):",
        args.runs,
        if args.stream { "streamed " } else { "" },
        args.calls + 1,
        args.calls
    );
    println!(
        "  p50 {:.1} µs   p99 {:.1} µs   max {:.1} µs",
        percentile(&per_step_us, 0.5),
        percentile(&per_step_us, 0.99),
        percentile(&per_step_us, 1.0)
    );
    println!("  (subtracted: a direct tool call {tool_mean_us:.1} µs, a direct tool listing {list_us:.1} µs)");
    Ok(())
}
