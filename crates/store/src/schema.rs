//! The schema: one migration text per step for SQLite and PostgreSQL alike, applied in order.

/// Schema steps, applied in order once each; `PRAGMA user_version` (SQLite) or the
/// `aiplus_schema` table (PostgreSQL) records how many ran. One text serves both databases:
/// `BIGINT` is PostgreSQL's 64-bit integer and has integer affinity in SQLite, and no table
/// uses SQLite's rowid alias (`INTEGER PRIMARY KEY`), so the meaning is the same.
pub(crate) const MIGRATIONS: &[&str] = &[
    "CREATE TABLE hubs (id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_ms BIGINT NOT NULL);
     CREATE TABLE clusters (id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_ms BIGINT NOT NULL);
     CREATE TABLE network_meta (key TEXT PRIMARY KEY, doc TEXT NOT NULL);
     CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        idempotency_key TEXT,
        state TEXT NOT NULL,
        submitted_ms BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
     CREATE INDEX jobs_tenant_seq ON jobs (tenant, seq);
     CREATE INDEX jobs_state_seq ON jobs (state, seq);",
    // The job lifecycle's history and the platform's usage ledger (append-only).
    "CREATE TABLE job_events (
        job_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        at_ms BIGINT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
     );
     CREATE TABLE usage_events (
        id TEXT PRIMARY KEY,
        at_ms BIGINT NOT NULL,
        tenant TEXT NOT NULL,
        pillar TEXT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX usage_tenant_at ON usage_events (tenant, at_ms);",
    // API keys: only the SHA-256 of each secret is kept.
    "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX api_keys_tenant ON api_keys (tenant);",
    LIMITS_MIGRATION,
    MODELS_MIGRATION,
    CONSOLE_MIGRATION,
    IDENTITY_MIGRATION,
    // Stored Responses (`/v1/responses`), kept per tenant up to a byte quota.
    "CREATE TABLE stored_responses (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        at_ms BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX stored_responses_tenant_at ON stored_responses (tenant, at_ms);",
    MODEL_DEPLOYMENTS_MIGRATION,
    TLOG_MIGRATION,
    GOVERN_MIGRATION,
    // Which transparency-log entry recorded each model state, so a later change always wins.
    "ALTER TABLE model_states ADD COLUMN log_index BIGINT NOT NULL DEFAULT -1;",
    FILINGS_MIGRATION,
    MONITOR_MIGRATION,
    EVAL_MIGRATION,
    AGENTS_MIGRATION,
    COLLECTIONS_MIGRATION,
    DATA_MIGRATION,
    TARGETS_MIGRATION,
];

/// `PRAGMA user_version = n` after step n; one entry per migration.
pub(crate) const USER_VERSION: [&str; 19] = [
    "PRAGMA user_version = 1",
    "PRAGMA user_version = 2",
    "PRAGMA user_version = 3",
    "PRAGMA user_version = 4",
    "PRAGMA user_version = 5",
    "PRAGMA user_version = 6",
    "PRAGMA user_version = 7",
    "PRAGMA user_version = 8",
    "PRAGMA user_version = 9",
    "PRAGMA user_version = 10",
    "PRAGMA user_version = 11",
    "PRAGMA user_version = 12",
    "PRAGMA user_version = 13",
    "PRAGMA user_version = 14",
    "PRAGMA user_version = 15",
    "PRAGMA user_version = 16",
    "PRAGMA user_version = 17",
    "PRAGMA user_version = 18",
    "PRAGMA user_version = 19",
];
const _: () = assert!(MIGRATIONS.len() == USER_VERSION.len(), "one user_version per migration");

/// Rate-limit counters shared by every gateway instance (one row per scope and window), and
/// tenants' settings (limits and regions).
const LIMITS_MIGRATION: &str = "CREATE TABLE limit_windows (
        scope TEXT NOT NULL,
        window_id BIGINT NOT NULL,
        used BIGINT NOT NULL,
        last_grant BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, window_id)
     );
     CREATE TABLE tenant_settings (tenant TEXT PRIMARY KEY, doc TEXT NOT NULL);";

/// Gateway models managed through the API: the model document, and its deployments' upstream
/// keys apart from it (they are never returned by the API).
const MODELS_MIGRATION: &str = "CREATE TABLE gateway_models (name TEXT PRIMARY KEY, doc TEXT NOT NULL, secrets TEXT NOT NULL);";

/// The console's accounts and sessions (a session is found by the SHA-256 of its id), and saved
/// simulation reports (a small summary for lists next to the whole report).
const CONSOLE_MIGRATION: &str = "CREATE TABLE console_users (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
     CREATE TABLE console_sessions (
        id_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX console_sessions_user ON console_sessions (user_name);
     CREATE TABLE sim_reports (id TEXT PRIMARY KEY, created_ms BIGINT NOT NULL, summary TEXT NOT NULL, doc TEXT NOT NULL);
     CREATE INDEX sim_reports_created ON sim_reports (created_ms);";

/// The tenant registry and operator tokens. Every tenant named before the registry existed
/// (by a key, a setting, a job or a usage event) is registered, so upgrading loses no tenant.
const IDENTITY_MIGRATION: &str = "CREATE TABLE tenants (id TEXT PRIMARY KEY, created_ms BIGINT NOT NULL, doc TEXT NOT NULL);
     CREATE TABLE operator_tokens (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
     INSERT INTO tenants (id, created_ms, doc)
        SELECT known.t, 0, '{}' FROM (SELECT tenant AS t FROM api_keys UNION SELECT tenant FROM tenant_settings
                                      UNION SELECT tenant FROM jobs UNION SELECT tenant FROM usage_events) AS known
        WHERE known.t <> '';";

/// Models deployed on the compute network: what is wanted (the model, its replica count and
/// shape) and the replicas' jobs, one document per model.
const MODEL_DEPLOYMENTS_MIGRATION: &str = "CREATE TABLE model_deployments (name TEXT PRIMARY KEY, doc TEXT NOT NULL);";

/// The transparency log: entries (the public leaf that is hashed and served, and the full
/// record it commits to by SHA-256) and the checkpoints signed over them, one per tree size.
const TLOG_MIGRATION: &str =
    "CREATE TABLE tlog_entries (idx BIGINT PRIMARY KEY, at_ms BIGINT NOT NULL, leaf TEXT NOT NULL, record TEXT NOT NULL);
     CREATE TABLE tlog_checkpoints (size BIGINT PRIMARY KEY, at_ms BIGINT NOT NULL, note TEXT NOT NULL);";

/// Each model's governance state (active, restricted, suspended), ordered by a sequence number
/// that every instance follows.
const GOVERN_MIGRATION: &str = "CREATE TABLE model_states (name TEXT PRIMARY KEY, seq BIGINT NOT NULL, doc TEXT NOT NULL);
     CREATE INDEX model_states_seq ON model_states (seq);";

/// Filings (one document each, ordered by a sequence every instance follows, with a revision
/// that a change must name), each filing's history of changes, the files attached to filings by
/// the SHA-256 of their bytes (base64, so one column type serves both databases), and alerts
/// (one open alert per key, however many instances raise it).
const FILINGS_MIGRATION: &str = "CREATE TABLE filings (
        id TEXT PRIMARY KEY,
        tenant TEXT,
        seq BIGINT NOT NULL,
        rev BIGINT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX filings_seq ON filings (seq);
     CREATE TABLE filing_events (filing_id TEXT NOT NULL, rev BIGINT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (filing_id, rev));
     CREATE TABLE blobs (sha256 TEXT PRIMARY KEY, size_bytes BIGINT NOT NULL, data TEXT NOT NULL);
     CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        tenant TEXT,
        opened_ms BIGINT NOT NULL,
        closed_ms BIGINT,
        doc TEXT NOT NULL
     );
     CREATE UNIQUE INDEX alerts_open_key ON alerts (key) WHERE closed_ms IS NULL;
     CREATE INDEX alerts_opened ON alerts (opened_ms);";

/// Monitoring: each instance's traffic counters per model and 10-second bucket (summed across
/// instances over a rule's window), the alert rules, the webhook deliveries with their retries and
/// dead letters, incidents (ordered like filings), and end users' blocked-input strikes.
const MONITOR_MIGRATION: &str = "CREATE TABLE monitor_buckets (
        instance TEXT NOT NULL,
        model TEXT NOT NULL,
        bucket_ms BIGINT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (instance, model, bucket_ms)
     );
     CREATE INDEX monitor_buckets_at ON monitor_buckets (bucket_ms);
     CREATE TABLE monitor_rules (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
     CREATE TABLE webhook_deliveries (id TEXT PRIMARY KEY, state TEXT NOT NULL, next_ms BIGINT NOT NULL, doc TEXT NOT NULL);
     CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_ms);
     CREATE TABLE incidents (id TEXT PRIMARY KEY, seq BIGINT NOT NULL, rev BIGINT NOT NULL, doc TEXT NOT NULL);
     CREATE INDEX incidents_seq ON incidents (seq);
     CREATE TABLE end_users (tenant TEXT NOT NULL, user_id TEXT NOT NULL, seq BIGINT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (tenant, user_id));
     CREATE INDEX end_users_seq ON end_users (seq);";

/// Evaluation runs asked of the server: each run's record (its state, options, progress and,
/// once done, its report), in the order they were asked.
const EVAL_MIGRATION: &str = "CREATE TABLE eval_runs (id TEXT PRIMARY KEY, seq BIGINT NOT NULL, state TEXT NOT NULL, doc TEXT NOT NULL);
     CREATE INDEX eval_runs_seq ON eval_runs (seq);
     CREATE INDEX eval_runs_state ON eval_runs (state);";

/// Agents: every version of every tenant's agent (a change adds a version; deleting marks them
/// all, so a pin never names a different agent later); background runs, each leased by the
/// instance that runs it, with the events a client may stream from a cursor; conversations
/// (the Conversations API) and their items in order.
const AGENTS_MIGRATION: &str = "CREATE TABLE agents (
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        version BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        deleted BIGINT NOT NULL DEFAULT 0,
        doc TEXT NOT NULL,
        PRIMARY KEY (tenant, id, version)
     );
     CREATE TABLE agent_runs (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        state TEXT NOT NULL,
        lease_owner TEXT NOT NULL DEFAULT '',
        lease_until_ms BIGINT NOT NULL DEFAULT 0,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX agent_runs_state ON agent_runs (state, lease_until_ms);
     CREATE TABLE agent_run_events (run_id TEXT NOT NULL, seq BIGINT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (run_id, seq));
     CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        items BIGINT NOT NULL DEFAULT 0,
        bytes BIGINT NOT NULL DEFAULT 0,
        next_seq BIGINT NOT NULL DEFAULT 0,
        metadata TEXT NOT NULL
     );
     CREATE INDEX conversations_tenant ON conversations (tenant, updated_ms);
     CREATE TABLE conversation_items (
        conversation TEXT NOT NULL,
        seq BIGINT NOT NULL,
        id TEXT NOT NULL,
        bytes BIGINT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (conversation, seq)
     );
     CREATE INDEX conversation_items_id ON conversation_items (conversation, id);
     CREATE TABLE agent_approvals (tenant TEXT NOT NULL, id TEXT NOT NULL, at_ms BIGINT NOT NULL, PRIMARY KEY (tenant, id));";

/// Tenants' document collections for the agents' `file_search`: each document (its text is
/// kept only as its chunks), and each chunk with its embedding (base64 little-endian `f32`, as
/// OpenAI encodes them, so one column type serves SQLite and PostgreSQL).
const COLLECTIONS_MIGRATION: &str = "CREATE TABLE collection_documents (
        tenant TEXT NOT NULL,
        collection TEXT NOT NULL,
        id TEXT NOT NULL,
        filename TEXT NOT NULL,
        bytes BIGINT NOT NULL,
        chunks BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        attributes TEXT NOT NULL,
        PRIMARY KEY (tenant, collection, id)
     );
     CREATE TABLE collection_chunks (
        tenant TEXT NOT NULL,
        collection TEXT NOT NULL,
        document TEXT NOT NULL,
        ix BIGINT NOT NULL,
        text TEXT NOT NULL,
        vector TEXT NOT NULL,
        PRIMARY KEY (tenant, collection, document, ix)
     );";

/// The data exchange: resumable uploads (a chunk's receipt is written only once its bytes are
/// stored), the content-addressed objects each tenant holds, datasets, their immutable
/// versions (the Croissant record as submitted and what was read from it), and lineage.
const DATA_MIGRATION: &str = "CREATE TABLE data_uploads (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size_bytes BIGINT NOT NULL,
        chunk_bytes BIGINT NOT NULL,
        state TEXT NOT NULL,
        name TEXT NOT NULL,
        created_ms BIGINT NOT NULL
     );
     CREATE INDEX data_uploads_tenant ON data_uploads (tenant, state);
     CREATE TABLE data_upload_chunks (
        upload TEXT NOT NULL,
        ix BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (upload, ix)
     );
     CREATE TABLE data_objects (
        tenant TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        bytes BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant, sha256)
     );
     CREATE TABLE datasets (
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        residency TEXT,
        listed_version TEXT,
        offer TEXT,
        created_ms BIGINT NOT NULL,
        PRIMARY KEY (tenant, id)
     );
     CREATE TABLE dataset_versions (
        tenant TEXT NOT NULL,
        dataset TEXT NOT NULL,
        version TEXT NOT NULL,
        state TEXT NOT NULL,
        croissant TEXT NOT NULL,
        croissant_sha256 TEXT NOT NULL,
        summary TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        published_ms BIGINT,
        PRIMARY KEY (tenant, dataset, version)
     );
     CREATE TABLE dataset_lineage (
        tenant TEXT NOT NULL,
        dataset TEXT NOT NULL,
        version TEXT NOT NULL,
        parent TEXT NOT NULL,
        PRIMARY KEY (tenant, dataset, version, parent)
     );
     CREATE INDEX dataset_lineage_parent ON dataset_lineage (parent);
     CREATE TABLE data_contracts (
        id TEXT PRIMARY KEY,
        buyer TEXT NOT NULL,
        seller TEXT NOT NULL,
        dataset TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX data_contracts_buyer ON data_contracts (buyer, created_ms);
     CREATE INDEX data_contracts_seller ON data_contracts (seller, created_ms);
     CREATE TABLE data_valuations (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        dataset TEXT NOT NULL,
        version TEXT NOT NULL,
        method TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX data_valuations_version ON data_valuations (tenant, dataset, version, created_ms);
     CREATE TABLE data_registrations (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        dataset TEXT NOT NULL,
        seq BIGINT NOT NULL UNIQUE,
        rev BIGINT NOT NULL,
        state TEXT NOT NULL,
        code TEXT UNIQUE,
        doc TEXT NOT NULL
     );
     CREATE INDEX data_registrations_tenant ON data_registrations (tenant, seq);
     CREATE INDEX data_registrations_state ON data_registrations (state, seq);
     CREATE TABLE data_settlements (
        contract TEXT NOT NULL,
        period TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (contract, period)
     );
     CREATE TABLE data_runs (
        id TEXT PRIMARY KEY,
        buyer TEXT NOT NULL,
        contract TEXT NOT NULL,
        idempotency_key TEXT,
        state TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        doc TEXT NOT NULL,
        UNIQUE (buyer, idempotency_key)
     );
     CREATE INDEX data_runs_contract ON data_runs (contract, created_ms);
     CREATE INDEX data_runs_state ON data_runs (state);";

/// The "AI+" Action's targets page: indicators operators enter by hand (a survey's adoption
/// rate, say), and an index that lets the page count one pillar's ledger events per month
/// without reading every other pillar's.
const TARGETS_MIGRATION: &str = "CREATE TABLE target_entries (id TEXT PRIMARY KEY, created_ms BIGINT NOT NULL, doc TEXT NOT NULL);
     CREATE INDEX target_entries_created ON target_entries (created_ms);
     CREATE INDEX usage_pillar_at ON usage_events (pillar, at_ms);";
