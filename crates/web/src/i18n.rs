//! Chinese and English. Every string a page shows goes through [`Lang::t`], keyed by its
//! English text's short name; a test checks that every key the pages use is in the table.
//!
//! The language comes from the `lang` cookie (set by the switch in the header) or, without
//! one, from the browser's `Accept-Language`, highest preference first.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "zh" | "zh-CN" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language of an `Accept-Language` header: the first of zh or en by preference
    /// (q-values), English when neither is named.
    pub fn from_accept_language(header: &str) -> Self {
        let mut best: Option<(f32, usize, Lang)> = None;
        for (i, part) in header.split(',').enumerate() {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it.find_map(|p| p.trim().strip_prefix("q=").and_then(|v| v.parse::<f32>().ok())).unwrap_or(1.0);
            let lang = if tag.starts_with("zh") {
                Lang::Zh
            } else if tag.starts_with("en") {
                Lang::En
            } else {
                continue;
            };
            // Higher q wins; among equal q, the one listed first.
            if best.is_none_or(|(bq, bi, _)| q > bq || (q == bq && i < bi)) {
                best = Some((q, i, lang));
            }
        }
        best.map_or(Lang::En, |(_, _, l)| l)
    }

    /// The text for `key` in this language; the key itself if the table lacks it.
    pub fn t(self, key: &'static str) -> &'static str {
        match STRINGS.iter().chain(crate::pages::oss::STRINGS).chain(crate::pages::targets::STRINGS).find(|(k, _, _)| *k == key) {
            Some((_, zh, en)) => match self {
                Lang::Zh => zh,
                Lang::En => en,
            },
            None => key,
        }
    }
}

/// (key, Chinese, English).
pub const STRINGS: &[(&str, &str, &str)] = &[
    ("app", "aiplus 控制台", "aiplus console"),
    ("skip", "跳到正文", "Skip to content"),
    ("nav", "主导航", "Main navigation"),
    ("network", "算力网络", "Compute network"),
    ("jobs", "作业", "Jobs"),
    ("sim", "仿真报告", "Simulation reports"),
    ("models", "模型服务", "Models"),
    ("tenants", "租户与用量", "Tenants and usage"),
    ("logout", "退出登录", "Log out"),
    ("login", "登录", "Log in"),
    ("username", "用户名", "Username"),
    ("password", "密码", "Password"),
    ("login_failed", "用户名或密码错误。", "Wrong username or password."),
    ("login_locked", "失败次数过多，请稍后再试。", "Too many failed attempts; try again shortly."),
    ("language", "语言", "Language"),
    ("signed_in_as", "当前用户", "Signed in as"),
    ("operator", "运维人员", "operator"),
    ("tenant", "租户", "Tenant"),
    ("register_tenant", "登记租户", "Register a tenant"),
    ("tenant_id", "租户标识", "Tenant id"),
    ("tenant_name", "租户名称", "Tenant name"),
    ("hubs", "枢纽节点", "Hubs"),
    ("hub", "枢纽", "Hub"),
    ("clusters", "集群", "Clusters"),
    ("cluster", "集群", "Cluster"),
    ("gpus_busy", "GPU 占用", "GPUs busy"),
    ("gpus_free", "GPU 空闲", "GPUs free"),
    ("gpus_total", "GPU 总数", "GPUs in total"),
    ("capacity", "容量", "Capacity"),
    ("tariff_now", "当前电价", "Tariff now"),
    ("period", "时段", "Period"),
    ("carbon", "碳强度", "Carbon intensity"),
    ("health", "健康", "Health"),
    ("healthy", "正常", "healthy"),
    ("unhealthy", "异常", "unhealthy"),
    ("links", "枢纽间链路", "Links between hubs"),
    ("latency", "时延", "Latency"),
    ("bandwidth", "带宽", "Bandwidth"),
    ("map_title", "全国一体化算力网络：枢纽与集群", "The national compute network: hubs and clusters"),
    ("map_caption", "示意图，不含国界线", "Schematic, no boundaries drawn"),
    (
        "map_note",
        "示意图，不含国界线和省界：各省级行政区以其省会（首府）的大致位置标为一点，经纬网每 10°。紫色菱形表示该集群上有模型副本在提供服务。各枢纽数据见下表。",
        "Schematic, no boundaries drawn: each provincial-level division is a point at the approximate position of its capital, on a 10° grid. A purple diamond marks a cluster where model replicas serve. The table below has each hub's figures.",
    ),
    ("jobs_queued", "排队作业", "Jobs queued"),
    ("jobs_running", "运行中作业", "Jobs running"),
    (
        "compute_elsewhere",
        "本实例不运行算力调度（server.compute = false），请查看运行调度的实例。",
        "This instance does not run compute (server.compute = false); see the instance that does.",
    ),
    ("province", "省份", "Province"),
    ("engine", "执行引擎", "Engine"),
    ("pue", "PUE", "PUE"),
    ("green_share", "绿电占比", "Green share"),
    ("node_pools", "节点池", "Node pools"),
    ("pool", "节点池", "Pool"),
    ("gpu_model", "GPU 型号", "GPU model"),
    ("nodes", "节点数", "Nodes"),
    ("gpus_per_node", "每节点 GPU", "GPUs per node"),
    ("cpu_cores", "CPU 核", "CPU cores"),
    ("memory_gib", "内存 GiB", "Memory GiB"),
    ("utilisation", "利用率", "Utilisation"),
    ("util_chart", "近 24 小时在用 GPU（由作业运行记录计算）", "GPUs in use, last 24 hours (from the jobs' runs)"),
    ("tariff_day", "分时电价（元/千瓦时，按小时）", "Time-of-use tariff (yuan/kWh, by hour)"),
    ("queue_waiting", "等待容量的作业（全网）", "Jobs waiting for capacity (whole network)"),
    ("none", "无", "none"),
    ("state", "状态", "State"),
    ("all", "全部", "all"),
    ("filter", "筛选", "Filter"),
    ("name", "名称", "Name"),
    ("id", "编号", "ID"),
    ("submitted", "提交时间", "Submitted"),
    ("updated", "更新时间", "Updated"),
    ("submit_job", "提交作业", "Submit a job"),
    ("kind", "类型", "Kind"),
    ("training", "训练", "training"),
    ("batch_inference", "批量推理", "batch inference"),
    ("online_inference", "在线推理", "online inference"),
    ("gpus", "GPU 数", "GPUs"),
    ("cpu_milli", "CPU（千分之一核）", "CPU (millicores)"),
    ("memory_mib", "内存 MiB", "Memory MiB"),
    ("duration_s", "预计时长（秒）", "Estimated duration (s)"),
    ("command", "命令（每行一个参数）", "Command (one argument per line)"),
    ("priority", "优先级", "Priority"),
    ("action_area", "“人工智能+”行动领域", "AI+ action area"),
    ("action_area_none", "未标注", "Not tagged"),
    ("regions", "允许区域（逗号分隔，如 hub:ningxia）", "Allowed regions (comma-separated, e.g. hub:ningxia)"),
    ("submit", "提交", "Submit"),
    ("job", "作业", "Job"),
    ("placement", "调度结果与理由", "Placement and why"),
    ("chosen", "选中", "chosen"),
    ("runner_up", "备选", "runner-up"),
    ("energy_cost", "电费（元）", "Energy cost (yuan)"),
    ("carbon_cost", "碳成本（元）", "Carbon cost (yuan)"),
    ("delay_cost", "延迟成本（元）", "Delay cost (yuan)"),
    ("transfer_s", "数据传输（秒）", "Data transfer (s)"),
    ("queue_s", "排队（秒）", "Queueing (s)"),
    ("total_cny", "目标值（元）", "Objective (yuan)"),
    ("excluded", "排除的集群", "Clusters ruled out"),
    ("reason", "原因", "Reason"),
    ("not_placed", "尚未调度。", "Not placed yet."),
    ("events", "生命周期事件", "Lifecycle events"),
    ("time", "时间", "Time"),
    ("attempt", "尝试", "Attempt"),
    ("logs", "日志", "Logs"),
    ("live", "实时", "live"),
    ("cancel", "取消作业", "Cancel job"),
    ("exit_code", "退出码", "Exit code"),
    ("policy", "策略", "Policy"),
    ("run_sim", "运行回放", "Run a replay"),
    ("source", "轨迹来源", "Trace"),
    ("synthetic", "内置合成轨迹（按 openb 统计生成）", "Built-in synthetic trace (drawn to openb's statistics)"),
    ("files", "服务器上的 openb 文件", "openb files on the server"),
    ("pods_path", "Pod 列表路径", "Pod list path"),
    ("nodes_path", "节点列表路径", "Node list path"),
    ("sim_jobs", "作业数", "Jobs"),
    ("seed", "随机种子", "Seed"),
    ("time_compression", "时间压缩倍数", "Time compression"),
    ("node_scale", "节点缩放", "Node scale"),
    ("policies", "策略", "Policies"),
    ("run", "运行", "Run"),
    ("saved_reports", "已保存的报告", "Saved reports"),
    ("created", "创建时间", "Created"),
    ("report", "报告", "Report"),
    ("wait_p50", "等待 p50（秒）", "Wait p50 (s)"),
    ("wait_p95", "等待 p95（秒）", "Wait p95 (s)"),
    ("carbon_kg", "碳排放（千克）", "Carbon (kg)"),
    ("unplaced", "未调度", "Unplaced"),
    ("violations", "违规", "Violations"),
    ("lower_bound", "下界", "Lower bound"),
    (
        "chart_alt",
        "各策略的电费、碳排放、等待与利用率，按枢纽随时间变化",
        "Energy cost, carbon, waiting and utilisation per policy and per hub over time",
    ),
    ("policy_bars", "各策略对比（相对 nearest）", "Policies compared (relative to nearest)"),
    ("sim_busy", "已有回放在运行，请稍后再试。", "A replay is already running; try again shortly."),
    ("sim_run", "回放", "Replay"),
    ("sim_runs", "正在运行和最近的回放", "Running and recent replays"),
    ("sim_phase_preparing", "正在准备轨迹", "Preparing the trace"),
    ("sim_phase_replaying", "正在回放各策略", "Replaying the policies"),
    ("sim_phase_bound", "各策略已回放完，正在计算下界", "Policies replayed; computing the lower bounds"),
    ("sim_phase_saving", "正在保存报告", "Saving the report"),
    ("sim_phase_finished", "已完成", "Finished"),
    ("sim_phase_failed", "失败", "Failed"),
    (
        "sim_run_note",
        "可以离开此页面：回放在后台继续，“仿真报告”页列出正在运行和最近的回放。",
        "You can leave this page: the replay goes on in the background, and Simulation reports lists the running and recent ones.",
    ),
    ("refresh", "刷新", "Refresh"),
    ("open_report", "打开报告", "Open the report"),
    ("jobs_unit", "个作业", "jobs"),
    ("operators_only", "此页面仅限运维人员。", "This page is for operators only."),
    ("routing", "路由", "Routing"),
    ("deployments", "部署", "Deployments"),
    ("deployment", "部署", "Deployment"),
    ("breaker_open", "熔断中", "breaker open"),
    ("latency_ewma", "平滑时延（毫秒）", "Smoothed latency (ms)"),
    ("requests_24h", "24 小时请求", "Requests (24 h)"),
    ("error_rate", "错误率", "Error rate"),
    ("p50", "p50（毫秒）", "p50 (ms)"),
    ("p95", "p95（毫秒）", "p95 (ms)"),
    ("p99", "p99（毫秒）", "p99 (ms)"),
    ("tokens_in", "输入 token", "Input tokens"),
    ("tokens_out", "输出 token", "Output tokens"),
    ("tokens_chart", "近 24 小时 token 用量（按小时）", "Tokens per hour, last 24 hours"),
    ("embedded", "内置嵌入模型", "Embedded model"),
    ("no_models", "尚未配置模型。", "No models are configured yet."),
    ("keys", "API 密钥", "API keys"),
    ("prefix", "前缀", "Prefix"),
    ("limits", "限额", "Limits"),
    ("revoked", "已吊销", "revoked"),
    ("active", "有效", "active"),
    ("revoke", "吊销", "Revoke"),
    ("create_key", "创建密钥", "Create a key"),
    ("requests_per_min", "每分钟请求数", "Requests per minute"),
    ("tokens_per_min", "每分钟 token", "Tokens per minute"),
    ("tokens_per_day", "每日 token", "Tokens per day"),
    ("secret_once", "新密钥（只显示这一次，请立即保存）：", "New key (shown this once only; store it now):"),
    ("usage", "用量与费用", "Usage and cost"),
    ("usage_chart", "近 30 天每日费用（元）", "Cost per day, last 30 days (yuan)"),
    ("day", "日期", "Day"),
    ("pillar", "板块", "Pillar"),
    ("requests", "请求数", "Requests"),
    ("cost_cny", "费用（元）", "Cost (yuan)"),
    ("gpu_hours", "GPU 小时", "GPU hours"),
    ("save", "保存", "Save"),
    ("tenant_settings", "租户限额与区域", "Tenant limits and regions"),
    ("accounts", "控制台账号", "Console accounts"),
    ("create_account", "为租户创建登录账号", "Create a login for a tenant"),
    ("role", "角色", "Role"),
    ("no_tenants", "尚无租户。", "No tenants yet."),
    ("not_found", "未找到", "Not found"),
    ("not_found_text", "没有这个页面，或您无权查看。", "There is no such page, or it is not yours to see."),
    ("bad_input", "输入有误", "Check the input"),
    ("error", "出错了", "Something went wrong"),
    ("back", "返回", "Back"),
    ("empty_table", "暂无数据。", "Nothing yet."),
    ("forbidden", "禁止访问", "Forbidden"),
    ("csrf_failed", "表单已过期，请刷新页面后重试。", "The form has expired; reload the page and try again."),
    ("governance", "治理", "Governance"),
    ("evaluation", "评测", "Evaluation"),
    ("agents", "智能体", "Agents"),
    ("data", "数据要素", "Data"),
    (
        "data_note",
        "数据交易所：按 Croissant 登记的数据集及其不可变版本、上架目录、确权登记公示，以及按贡献价值（KNN-Shapley）结算。文件按 SHA-256 内容寻址，分块续传。",
        "The data exchange: datasets described by Croissant records with immutable versions, the catalogue of listings, registrations on public notice, and settlement by value contribution (KNN-Shapley). Files are addressed by SHA-256 and uploaded in resumable chunks.",
    ),
    ("catalogue", "数据目录", "Catalogue"),
    ("dataset", "数据集", "Dataset"),
    ("licence", "许可", "Licence"),
    ("price", "价格", "Price"),
    ("data_files", "文件", "Files"),
    ("own_datasets", "本租户的数据集", "This tenant's datasets"),
    ("residency", "驻留区域", "Residency"),
    ("versions", "版本", "Versions"),
    ("listed", "已上架", "Listed"),
    ("upload_file", "上传文件", "Upload a file"),
    ("file", "文件", "File"),
    ("upload", "上传", "Upload"),
    ("upload_progress", "上传进度", "Upload progress"),
    ("uploaded", "已上传，SHA-256", "Uploaded, SHA-256"),
    (
        "upload_needs_https",
        "浏览器只在 HTTPS（或本机）页面上计算 SHA-256；请改用 aiplus data upload。",
        "The browser computes SHA-256 only on HTTPS (or local) pages; use aiplus data upload instead.",
    ),
    ("registration_notices", "登记公示", "Registrations on public notice"),
    ("rights", "权利", "Rights"),
    ("notice_until", "公示截止", "Notice until"),
    ("objections", "异议", "Objections"),
    ("description", "描述", "Description"),
    ("lineage", "来源（衍生自）", "Lineage (derived from)"),
    ("record_sets", "记录集", "Record sets"),
    ("hosted", "托管", "Hosted"),
    ("not_uploaded", "未上传", "not uploaded"),
    ("registrations", "登记", "Registrations"),
    ("code", "登记编号", "Code"),
    ("valuation", "数据估值", "Valuation"),
    ("utility", "效用", "utility"),
    ("value", "价值", "Value"),
    ("rows", "行数", "Rows"),
    ("value_per_contributor", "各贡献方的价值", "Value per contributor"),
    ("value_distribution", "各行价值的分布", "Distribution of the rows' values"),
    ("settlements", "收益分配结算", "Settlements"),
    ("contract", "合同", "Contract"),
    ("contracts", "访问合同", "Access contracts"),
    ("buyer", "买方", "Buyer"),
    ("mode", "使用方式", "Mode"),
    ("mode_download", "计量下载", "Metered download"),
    ("mode_compute", "可用不可见（计算）", "Compute-to-data"),
    ("in_force_until", "有效期至", "In force until"),
    ("revenue_fen", "收入（分）", "Revenue (fen)"),
    ("fee_fen", "平台费（分）", "Fee (fen)"),
    ("payouts_fen", "各贡献方所得（分）", "Payouts (fen)"),
    (
        "agents_note",
        "租户声明的智能体，任何 OpenAI 兼容客户端以模型名 agent:<id> 调用；下方是过去 24 小时的运行及其用量（模型步骤与工具调用，来自用量账本）。",
        "Agents tenants declare, used by any OpenAI-compatible client as the model agent:<id>; below, the runs of the last 24 hours with their usage (model steps and tool calls, from the usage ledger).",
    ),
    ("version", "版本", "Version"),
    ("tools", "工具", "Tools"),
    ("max_steps", "最多步数", "Max steps"),
    ("agent_runs_24h", "过去 24 小时的运行", "Runs, last 24 hours"),
    ("declare_agent", "声明或修改智能体", "Declare or change an agent"),
    ("agent_id", "智能体 ID", "Agent id"),
    ("agent_spec", "声明（JSON）", "Declaration (JSON)"),
    (
        "agent_spec_hint",
        "instructions、model、tools（function、mcp、file_search）、limits、regions、metadata；与 PUT /api/v1/agents/{id} 相同。修改会生成新版本。",
        "instructions, model, tools (function, mcp, file_search), limits, regions, metadata; as PUT /api/v1/agents/{id} takes it. A change makes a new version.",
    ),
    ("declare", "保存", "Save"),
    ("change", "修改", "Change"),
    ("playground", "试运行", "Playground"),
    (
        "playground_note",
        "以您的身份运行智能体，逐步显示：工具列表、工具调用的参数与结果、检索、回答和用量。运行计入租户用量。",
        "Runs an agent as you and shows each step as it happens: tool lists, tool calls with their arguments and results, searches, the answer and the usage. Runs count as the tenant's usage.",
    ),
    ("running_ellipsis", "运行中…", "Running…"),
    ("play_tools", "可用工具", "Tools of"),
    ("play_call", "调用", "Call"),
    ("play_search", "检索", "Search"),
    ("play_client", "交给客户端的函数调用", "Function call for the client"),
    ("play_approval", "等待批准", "Waits for approval"),
    ("play_usage", "用量", "Usage"),
    ("response", "响应", "Response"),
    ("agent", "智能体", "Agent"),
    ("started", "开始", "Started"),
    ("steps", "步数", "Steps"),
    ("tool_calls", "工具调用", "Tool calls"),
    ("model", "模型", "Model"),
    ("leaderboard", "排行榜", "Leaderboard"),
    (
        "leaderboard_note",
        "每个模型在每个评测集上最新一次完整运行的结果（准确率，或应拒答题的拒答率），±1 个标准误。",
        "Each model's newest whole-suite run on each suite (accuracy, or the refusal rate of must-refuse prompts), ±1 standard error.",
    ),
    ("start_eval", "发起评测", "Start an evaluation"),
    ("suite", "评测集", "Suite"),
    ("no_data", "无数据", "no data"),
    ("subjects", "科目（逗号分隔）", "Subjects (comma-separated)"),
    ("limit_per_subject", "每科最多题数", "At most items per subject"),
    ("judge_model", "评判模型", "Judge model"),
    ("eval_runs", "评测运行", "Evaluation runs"),
    ("eval_run", "评测运行", "Evaluation run"),
    ("run_id", "编号", "Run"),
    ("progress", "进度", "Progress"),
    ("result", "结果", "Result"),
    ("queued", "排队中", "queued"),
    ("running", "运行中", "running"),
    ("succeeded", "已完成", "succeeded"),
    ("failed", "失败", "failed"),
    ("self_assessments", "安全自评估", "Safety self-assessments"),
    ("filing", "备案", "Filing"),
    ("profile", "评估规范", "Profile"),
    ("verdict", "结论", "Verdict"),
    ("requirements", "要求", "Requirements"),
    ("pass", "通过", "pass"),
    ("fail", "未通过", "fail"),
    ("incomplete", "未完成", "incomplete"),
    ("not_assessed", "未评估", "not assessed"),
    ("cached", "缓存命中", "cached"),
    ("calls", "调用", "calls"),
    ("refused_must", "应拒答题拒答率", "Refused, must-refuse prompts"),
    ("refused_should", "非拒答题拒答率", "Refused, should-answer prompts"),
    ("refused", "拒答", "refused"),
    ("bias_ambiguous", "偏见分数（歧义语境）", "Bias score (ambiguous contexts)"),
    ("bias_disambiguated", "偏见分数（明确语境）", "Bias score (disambiguated contexts)"),
    ("accuracy", "准确率", "accuracy"),
    ("groups", "分组", "Groups"),
    ("group", "分组", "Group"),
    ("download_samples", "下载逐题记录（JSONL）", "Download the per-sample log (JSONL)"),
    ("model_states", "模型状态", "Model states"),
    ("status", "状态", "Status"),
    ("changed_by", "变更人", "Changed by"),
    ("action", "操作", "Action"),
    ("suspend", "暂停", "Suspend"),
    ("activate", "恢复", "Activate"),
    ("state_active", "正常", "active"),
    ("state_restricted", "受限", "restricted"),
    ("state_suspended", "已暂停", "suspended"),
    ("alerts", "告警", "Alerts"),
    ("opened", "发生时间", "Opened"),
    ("subject", "对象", "Subject"),
    ("message", "内容", "Message"),
    ("open", "未关闭", "open"),
    ("closed", "已关闭", "closed"),
    ("filings", "备案", "Filings"),
    ("filing_number", "备案号", "Filing number"),
    ("due", "期限", "Due"),
    ("overdue", "已逾期", "overdue"),
    ("incidents", "安全事件", "Incidents"),
    ("discovered", "发现时间", "Discovered"),
    ("title", "标题", "Title"),
    ("grade", "级别", "Grade"),
    ("report_due", "报告期限", "Report due"),
    ("grade_general", "一般", "general"),
    ("grade_major", "较大", "major"),
    ("grade_serious", "重大", "serious"),
    ("grade_especially_serious", "特别重大", "especially serious"),
    ("alert_rules", "告警规则", "Alert rules"),
    ("metric", "指标", "Metric"),
    ("fire_above", "触发阈值", "Fire above"),
    ("clear_below", "解除阈值", "Clear below"),
    ("log_explorer", "透明日志浏览", "Transparency log explorer"),
    (
        "log_intro",
        "治理变更（模型状态、备案、事件、告警规则）都写入只可追加的默克尔日志。下面的校验在本浏览器中完成：取回包含证明和日志公钥，重算树根，并用 Ed25519 验证检查点签名。",
        "Every governance change (model states, filings, incidents, alert rules) is an entry of an append-only Merkle log. The check below runs in this browser: it fetches the inclusion proof and the log's public key, recomputes the tree's root, and verifies the checkpoint's Ed25519 signature.",
    ),
    ("checkpoint", "最新签名检查点", "Latest signed checkpoint"),
    ("verify_entry", "校验条目", "Verify an entry"),
    ("entry_index", "条目序号", "Entry index"),
    ("verify_in_browser", "在浏览器中校验", "Verify in this browser"),
    ("verify", "校验", "Verify"),
    ("verify_ok", "已验证", "Verified"),
    ("verify_bad", "校验失败", "Verification failed"),
    (
        "verify_nocrypto",
        "此浏览器在非 HTTPS 页面上不提供 Web Crypto；请通过 HTTPS 或本机访问，或使用 aiplus log verify。",
        "This browser offers no Web Crypto outside HTTPS or localhost; open the console over HTTPS, or use aiplus log verify.",
    ),
    ("verify_working", "校验中…", "Verifying…"),
    ("entries", "最新条目", "Latest entries"),
    ("older", "更早的条目", "Older entries"),
    ("log_key", "日志公钥", "The log's public key"),
    (
        "log_key_compare",
        "请与运营方通过可信渠道公布的公钥比对：浏览器中的校验以此公钥为准，只有它与公布的一致，校验才独立于本服务器。",
        "Compare it with the key the operator published over a channel you trust: the check in this browser relies on this key, and is independent of this server only if the two match.",
    ),
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

    use super::*;

    #[test]
    fn accept_language_picks_the_preferred_of_zh_and_en() {
        assert_eq!(Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9,zh-CN;q=0.8"), Lang::En);
        assert_eq!(Lang::from_accept_language("fr-FR,zh-TW;q=0.5,en;q=0.4"), Lang::Zh);
        assert_eq!(Lang::from_accept_language("de"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
    }

    #[test]
    fn the_table_has_unique_keys_and_both_languages() {
        let all = || STRINGS.iter().chain(crate::pages::oss::STRINGS).chain(crate::pages::targets::STRINGS);
        let mut keys: Vec<&str> = all().map(|s| s.0).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate keys");
        for (k, zh, en) in all() {
            assert!(!zh.is_empty() && !en.is_empty(), "{k}");
        }
    }

    /// Every `t("…")` in the pages' source has an entry, so no page shows a bare key.
    #[test]
    fn every_key_the_pages_use_is_translated() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut missing = Vec::new();
        let mut seen = 0;
        let mut files = vec![dir.clone()];
        while let Some(p) = files.pop() {
            if p.is_dir() {
                files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            for chunk in text.split(".t(\"").skip(1) {
                let key = chunk.split('"').next().unwrap();
                seen += 1;
                if !STRINGS.iter().chain(crate::pages::oss::STRINGS).chain(crate::pages::targets::STRINGS).any(|s| s.0 == key) {
                    missing.push(format!("{}: {key}", p.display()));
                }
            }
        }
        assert!(seen > 50, "the scan found only {seen} uses");
        assert!(missing.is_empty(), "{missing:?}");
    }
}
