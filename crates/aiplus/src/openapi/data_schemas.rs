//! The data exchange's part of the document: datasets, their versions (Croissant records),
//! resumable uploads and the catalogue. The limits are `data`'s own.

use serde_json::{Value, json};

use super::Op;
use super::agent_schemas::listed;
use super::schemas::{object, record};

/// A dataset id, as `data::exchange` checks it.
pub const DATASET_ID_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,63}$";

pub const OPERATIONS: &[Op] = &[
    ("get", "/api/v1/datasets", "data", "The tenant's datasets, each with its versions.", None, 200),
    (
        "post",
        "/api/v1/datasets",
        "data",
        "Create a dataset. `residency` keeps its files in a region; 422 when the exchange's store is outside it.",
        Some("DatasetCreate"),
        201,
    ),
    ("get", "/api/v1/datasets/{id}", "data", "A dataset, its residency, listing and versions.", None, 200),
    (
        "put",
        "/api/v1/datasets/{id}/listing",
        "data",
        "Point the dataset's catalogue listing at a published version, or withdraw it (`null`).",
        Some("DatasetListing"),
        200,
    ),
    (
        "post",
        "/api/v1/datasets/{id}/versions",
        "data",
        "Add a version: the body is its Croissant record (validated as mlcroissant does; 422 lists mlcroissant's errors). 201 when new, 200 when the same record was added before, 409 when the version exists with other content (versions are immutable).",
        Some("CroissantRecord"),
        201,
    ),
    (
        "get",
        "/api/v1/datasets/{id}/versions/{version}",
        "data",
        "A version: what was read from its record, and its files not yet uploaded.",
        None,
        200,
    ),
    ("get", "/api/v1/datasets/{id}/versions/{version}/croissant", "data", "A version's Croissant record, as it was added.", None, 200),
    (
        "post",
        "/api/v1/datasets/{id}/versions/{version}/publish",
        "data",
        "Publish a draft once every hosted file is uploaded (422 names the missing ones).",
        None,
        200,
    ),
    ("get", "/api/v1/datasets/{id}/versions/{version}/files/{file}", "data", "A hosted file of one of the tenant's versions.", None, 200),
    ("get", "/api/v1/datasets/{id}/versions/{version}/valuations", "data", "A version's valuation records, newest first.", None, 200),
    (
        "post",
        "/api/v1/datasets/{id}/versions/{version}/valuations",
        "data",
        "Value a version's training file (numeric features, label last, a contributor column) for its test file: exact KNN-Shapley, leave-one-out or Data Banzhaf, per row and per contributor. The record keeps K, the utility, both files' SHA-256 and the settings, to be replayed.",
        Some("ValuationRequest"),
        201,
    ),
    ("get", "/api/v1/catalogue", "data", "Every tenant's listed datasets, each at the version its listing points at.", None, 200),
    ("get", "/api/v1/contracts", "data", "The contracts the tenant is a party to (as buyer or seller), newest first.", None, 200),
    (
        "post",
        "/api/v1/contracts",
        "data",
        "Sign a contract as the buyer, on a listing's terms (its version and price). A flat price is charged at once.",
        Some("ContractCreate"),
        201,
    ),
    ("get", "/api/v1/contracts/{id}", "data", "A contract, for either party.", None, 200),
    (
        "get",
        "/api/v1/contracts/{id}/files/{file}",
        "data",
        "Read a file under a download contract in force; each read is a ledger event priced by the contract. A compute-to-data contract's files are never read (409).",
        None,
        200,
    ),
    ("get", "/api/v1/contracts/{id}/runs", "data", "A contract's compute-to-data runs, newest first, for either party.", None, 200),
    (
        "post",
        "/api/v1/contracts/{id}/runs",
        "data",
        "Start a compute-to-data run (可用不可见) under a compute contract in force: a job on the compute network, placed where the data lives and within the dataset's residency, that sees the version's files read-only at /data, has no network, and writes to /out. Only the declared outputs leave, after the contract's output check; the job's log is never shown. Each run is a ledger event priced by the contract. With Idempotency-Key, a retry answers with the first run.",
        Some("RunCreate"),
        201,
    ),
    (
        "get",
        "/api/v1/contracts/{id}/runs/{run}",
        "data",
        "A run: its state, job, charge, and the outputs that left (or why none did).",
        None,
        200,
    ),
    (
        "get",
        "/api/v1/contracts/{id}/runs/{run}/outputs/{name}",
        "data",
        "An output of a run that passed the output check, for the buyer.",
        None,
        200,
    ),
    ("get", "/api/v1/registrations", "data", "The tenant's registrations, newest first.", None, 200),
    (
        "post",
        "/api/v1/registrations",
        "data",
        "Apply for a registration (数据登记) of a published version: the three rights with holder, scope and term; the source's authorisation; classification and grade; the licence chain. Each step of the procedure is a transparency-log leaf.",
        Some("RegistrationCreate"),
        201,
    ),
    ("get", "/api/v1/registrations/{id}", "data", "A registration with its steps (each with its log index) and objections.", None, 200),
    (
        "post",
        "/api/v1/registrations/{id}/objections",
        "data",
        "Object to a registration on public notice (another tenant).",
        Some("RegistrationObjection"),
        200,
    ),
    (
        "post",
        "/api/v1/registrations/{id}/actions",
        "data",
        "The operator's formal review (pass, reject), decision on an objection (uphold, dismiss), or finalize once the notice is over: the registration code is given.",
        Some("RegistrationAction"),
        200,
    ),
    ("get", "/api/v1/registration-notices", "data", "The registrations on public notice, which any tenant may object to.", None, 200),
    (
        "get",
        "/api/v1/settlements",
        "data",
        "Settlements, newest first: a seller's own, or (for an operator not acting for a tenant) all.",
        None,
        200,
    ),
    (
        "post",
        "/api/v1/settlements",
        "data",
        "Settle a month: each contract's revenue split among its dataset's contributors by their Shapley shares after the platform's fee, in integer fen (largest remainders). Settling again changes nothing.",
        Some("Settle"),
        200,
    ),
    (
        "post",
        "/api/v1/uploads",
        "data",
        "Open a resumable upload of one file, declared by its SHA-256 and size. A file the tenant holds completes at once.",
        Some("UploadCreate"),
        201,
    ),
    ("get", "/api/v1/uploads/{id}", "data", "An upload's progress: the chunks still missing, to resume it.", None, 200),
    (
        "delete",
        "/api/v1/uploads/{id}",
        "data",
        "Cancel an open upload: its staged chunks are deleted and it no longer counts against the tenant's limits.",
        None,
        200,
    ),
    (
        "put",
        "/api/v1/uploads/{id}/chunks/{ix}",
        "data",
        "Send chunk `ix` (raw bytes; every chunk but the last is `chunk_bytes` long). `X-Chunk-Sha256`, when sent, is checked.",
        Some("Binary"),
        200,
    ),
    (
        "post",
        "/api/v1/uploads/{id}/complete",
        "data",
        "Assemble the chunks; the file appears only if its SHA-256 is the declared one (409 otherwise, and its chunks are to be sent again).",
        None,
        200,
    ),
];

/// The schema of a path parameter of the exchange's routes, when it is narrower than a string.
pub fn path_param(path: &str, name: &str) -> Option<Value> {
    if !path.starts_with("/api/v1/datasets/") && !path.starts_with("/api/v1/uploads/") {
        return None;
    }
    match name {
        "id" if path.starts_with("/api/v1/datasets/") => Some(json!({"type": "string", "pattern": DATASET_ID_PATTERN})),
        "ix" => Some(json!({"type": "string", "pattern": "^[0-9]{1,9}$"})),
        _ => None,
    }
}

/// What a successful answer carries, where it is not JSON.
pub fn success_content(path: &str) -> Option<Value> {
    match path {
        "/api/v1/datasets/{id}/versions/{version}/files/{file}"
        | "/api/v1/contracts/{id}/files/{file}"
        | "/api/v1/contracts/{id}/runs/{run}/outputs/{name}" => {
            Some(json!({"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}))
        }
        "/api/v1/datasets/{id}/versions/{version}/croissant" => Some(json!({"application/ld+json": {"schema": {"type": "object"}}})),
        _ => None,
    }
}

pub fn requests() -> Vec<(&'static str, Value)> {
    vec![
        (
            "DatasetCreate",
            object(
                &["id"],
                json!({"id": {"type": "string", "pattern": DATASET_ID_PATTERN},
                       "residency": {"type": ["string", "null"], "pattern": "^(province|hub):\\S", "maxLength": 110}}),
            ),
        ),
        ("DatasetListing", listing()),
        (
            "ValuationRequest",
            object(
                &["train_file", "test_file"],
                json!({"train_file": {"type": "string", "minLength": 1, "maxLength": 256}, "test_file": {"type": "string", "minLength": 1, "maxLength": 256},
                       "k": {"type": "integer", "minimum": 1, "maximum": 1000}, "method": {"enum": ["knn-shapley", "loo", "banzhaf"]},
                       "contributor_column": {"type": "string", "minLength": 1, "maxLength": 256},
                       "samples": {"type": "integer", "minimum": 2, "maximum": data::semivalues::MAX_SAMPLES}, "seed": {"type": "integer", "minimum": 0},
                       "text_column": {"type": ["string", "null"], "minLength": 1, "maxLength": 256,
                                       "description": "Value text rows on their embeddings by the embedded model: the column holding the text."}}),
            ),
        ),
        (
            "ContractCreate",
            object(
                &["seller", "dataset", "purpose", "days", "mode"],
                json!({"seller": {"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"}, "dataset": {"type": "string", "pattern": DATASET_ID_PATTERN},
                       "purpose": {"type": "string", "minLength": 1, "maxLength": 500, "pattern": "\\S"},
                       "days": {"type": "integer", "minimum": 1, "maximum": data::exchange::MAX_TERM_DAYS}, "mode": {"enum": ["download", "compute"]}}),
            ),
        ),
        ("RunCreate", run_create()),
        ("Settle", object(&["period"], json!({"period": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}}))),
        ("RegistrationCreate", registration_create()),
        ("RegistrationObjection", object(&["reason"], json!({"reason": text()}))),
        ("RegistrationAction", registration_action()),
        (
            "UploadCreate",
            object(
                &["sha256", "size_bytes"],
                json!({"sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                       "size_bytes": {"type": "integer", "minimum": 1, "maximum": data::exchange::Limits::default().max_file_bytes},
                       "name": {"type": ["string", "null"], "minLength": 1, "maxLength": 255}}),
            ),
        ),
        (
            "CroissantRecord",
            json!({"type": "object", "description": "A Croissant 0.8, 1.0 or 1.1 JSON-LD record (https://docs.mlcommons.org/croissant/) with a `version` (MAJOR.MINOR.PATCH). Files with a relative contentUrl are hosted here and need their sha256."}),
        ),
    ]
}

fn text() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": data::registry::MAX_TEXT_CHARS, "pattern": "\\S"})
}

fn date() -> Value {
    json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"})
}

fn registration_create() -> Value {
    let right = object(
        &["right", "holder", "scope", "from"],
        json!({"right": {"enum": ["holding", "processing", "operation"]}, "holder": text(), "scope": text(), "from": date(),
               "until": {"anyOf": [date(), {"type": "null"}]}}),
    );
    object(
        &["kind", "dataset", "version", "rights", "authorization", "classification", "licence_chain"],
        json!({"kind": {"enum": ["first", "change", "correction", "transfer", "cancellation"]},
               "dataset": {"type": "string", "pattern": DATASET_ID_PATTERN}, "version": {"type": "string", "minLength": 1, "maxLength": 64},
               "rights": {"type": "array", "minItems": 1, "maxItems": data::registry::MAX_RIGHTS, "items": right},
               "authorization": object(&["basis", "description"], json!({"basis": {"enum": ["self_collected", "licensed", "public", "consent", "contract"]},
                   "description": text(), "evidence_sha256": {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"}})),
               "classification": object(&["category", "grade"], json!({"category": {"enum": ["public", "enterprise", "personal"]},
                   "grade": {"enum": ["general", "important", "core"]}})),
               "licence_chain": {"type": "array", "minItems": 1, "maxItems": data::registry::MAX_LICENCE_CHAIN,
                                 "items": object(&["source", "licence"], json!({"source": text(), "licence": text()}))},
               "previous": {"type": ["string", "null"], "minLength": 1, "maxLength": 64}}),
    )
}

fn registration_action() -> Value {
    let reasoned = |a: &str| object(&["action", "reason"], json!({"action": {"const": a}, "reason": text()}));
    let decided =
        |a: &str| object(&["action", "objection", "reason"], json!({"action": {"const": a}, "objection": text(), "reason": text()}));
    json!({"oneOf": [reasoned("pass"), reasoned("reject"), decided("uphold"), decided("dismiss"),
                     object(&["action"], json!({"action": {"const": "finalize"}}))]})
}

/// A listing: a published version and its offer (needed to list), or a null version to withdraw it.
fn listing() -> Value {
    let fen = json!({"type": "integer", "minimum": 0, "maximum": 10_000_000_000_i64});
    let units: Vec<Value> = ["per_gb", "per_record", "per_call", "flat"]
        .iter()
        .map(|u| object(&["unit", "fen"], json!({"unit": {"const": u}, "fen": fen})))
        .collect();
    let price = json!({"oneOf": units});
    let offer = object(
        &["price", "modes", "max_days"],
        json!({"price": price, "modes": {"type": "array", "minItems": 1, "maxItems": 2, "uniqueItems": true, "items": {"enum": ["download", "compute"]}},
               "max_days": {"type": "integer", "minimum": 1, "maximum": data::exchange::MAX_TERM_DAYS},
               "output": output_rules()}),
    );
    object(
        &["version"],
        json!({"version": {"type": ["string", "null"], "minLength": 1, "maxLength": 64,
                           "description": "The published version listed; null withdraws the listing."},
               "offer": offer}),
    )
}

/// The output check of compute-to-data runs an offer sets.
fn output_rules() -> Value {
    let rules = json!({"max_bytes": {"type": "integer", "minimum": 1, "maximum": data::exchange::MAX_OUTPUT_BYTES},
                       "forbid_records": {"type": "boolean"}});
    json!({"type": "object", "additionalProperties": false, "properties": rules})
}

fn run_create() -> Value {
    let name = json!({"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"});
    object(
        &["command", "outputs"],
        json!({"command": {"type": "array", "minItems": 1, "maxItems": 256, "items": {"type": "string", "maxLength": 4096}},
               "env": {"type": "object", "maxProperties": 64, "propertyNames": {"pattern": "^(?!AIPLUS_)[A-Za-z0-9_]+$"},
                       "additionalProperties": {"type": "string", "maxLength": 4096, "pattern": "^[^\\u0000]*$"}},
               "outputs": {"type": "array", "minItems": 1, "maxItems": 16, "uniqueItems": true, "items": name},
               "cpu_milli": {"type": "integer", "minimum": 1, "maximum": 64000},
               "memory_mib": {"type": "integer", "minimum": 16, "maximum": 262144},
               "duration_s": {"type": "integer", "minimum": 1, "maximum": 604800}}),
    )
}

fn run_view() -> Value {
    record(
        &["object", "id", "contract", "buyer", "seller", "state", "command", "outputs", "amount_fen", "results"],
        json!({"object": {"const": "data.run"}, "state": {"enum": ["staging", "running", "succeeded", "refused", "failed"]},
               "job": {"type": ["string", "null"]}, "reason": {"type": ["string", "null"]},
               "results": {"type": "array", "items": record(&["name", "bytes", "sha256"], json!({}))}}),
    )
}

fn version_view() -> Value {
    record(
        &["object", "dataset", "version", "iri", "state", "croissant_sha256", "missing_files", "summary"],
        json!({"object": {"const": "dataset.version"}, "state": {"enum": ["draft", "published"]},
               "missing_files": {"type": "array", "items": {"type": "string"}},
               "summary": record(&["name", "conforms_to", "files", "derived_from"], json!({"files": {"type": "array"}}))}),
    )
}

fn dataset_view() -> Value {
    record(
        &["object", "tenant", "id", "versions"],
        json!({"object": {"const": "dataset"}, "residency": {"type": ["string", "null"]},
               "listed_version": {"type": ["string", "null"]}, "versions": {"type": "array", "items": version_view()}}),
    )
}

fn upload_view() -> Value {
    record(
        &["object", "id", "sha256", "size_bytes", "chunk_bytes", "chunks", "received", "missing", "state"],
        json!({"object": {"const": "data.upload"}, "state": {"enum": ["open", "complete", "cancelled"]},
               "missing": {"type": "array", "items": {"type": "integer"}}}),
    )
}

fn contract() -> Value {
    record(
        &["object", "id", "buyer", "seller", "dataset", "version", "purpose", "mode", "price", "from_ms", "to_ms"],
        json!({"object": {"const": "data.contract"}, "mode": {"enum": ["download", "compute"]}}),
    )
}

fn valuation() -> Value {
    record(
        &["object", "id", "method", "k", "utility", "train_sha256", "test_sha256", "contributors", "values"],
        json!({"object": {"const": "data.valuation"}, "method": {"enum": ["knn-shapley", "loo", "banzhaf"]},
               "contributors": {"type": "array", "items": record(&["id", "value", "points"], json!({}))},
               "values": {"type": "array", "items": {"type": "number"}}}),
    )
}

fn settlement() -> Value {
    record(
        &["object", "contract", "period", "revenue_fen", "fee_fen", "lines", "created"],
        json!({"object": {"const": "data.settlement"},
               "lines": {"type": "array", "items": record(&["party", "role", "fen"], json!({"role": {"enum": ["payout", "fee"]}, "fen": {"type": "integer"}}))}}),
    )
}

fn registration() -> Value {
    record(
        &["object", "id", "tenant", "rev", "application", "state", "objections", "steps"],
        json!({"object": {"const": "data.registration"},
               "state": {"enum": ["applied", "notice", "registered", "rejected", "superseded", "cancelled"]},
               "code": {"type": ["string", "null"]},
               "steps": {"type": "array", "items": record(&["action", "actor_role", "at_ms", "log_index"], json!({}))}}),
    )
}

pub fn responses() -> Vec<(&'static str, &'static str, Value)> {
    let entry =
        record(&["object", "tenant", "dataset", "version"], json!({"object": {"const": "catalogue.entry"}, "version": version_view()}));
    vec![
        ("get", "/api/v1/datasets", listed(dataset_view())),
        ("post", "/api/v1/datasets", dataset_view()),
        ("get", "/api/v1/datasets/{id}", dataset_view()),
        ("put", "/api/v1/datasets/{id}/listing", dataset_view()),
        ("post", "/api/v1/datasets/{id}/versions", version_view()),
        ("get", "/api/v1/datasets/{id}/versions/{version}", version_view()),
        ("post", "/api/v1/datasets/{id}/versions/{version}/publish", version_view()),
        ("get", "/api/v1/catalogue", listed(entry)),
        ("get", "/api/v1/contracts", listed(contract())),
        ("post", "/api/v1/contracts", contract()),
        ("get", "/api/v1/contracts/{id}", contract()),
        ("get", "/api/v1/contracts/{id}/runs", listed(run_view())),
        ("post", "/api/v1/contracts/{id}/runs", run_view()),
        ("get", "/api/v1/contracts/{id}/runs/{run}", run_view()),
        ("post", "/api/v1/datasets/{id}/versions/{version}/valuations", valuation()),
        ("get", "/api/v1/datasets/{id}/versions/{version}/valuations", listed(valuation())),
        ("post", "/api/v1/settlements", listed(settlement())),
        ("get", "/api/v1/settlements", listed(settlement())),
        ("get", "/api/v1/registrations", listed(registration())),
        ("post", "/api/v1/registrations", registration()),
        ("get", "/api/v1/registrations/{id}", registration()),
        ("post", "/api/v1/registrations/{id}/objections", registration()),
        ("post", "/api/v1/registrations/{id}/actions", registration()),
        ("get", "/api/v1/registration-notices", listed(record(&["object", "id", "tenant", "dataset", "rights"], json!({})))),
        ("post", "/api/v1/uploads", upload_view()),
        ("get", "/api/v1/uploads/{id}", upload_view()),
        ("delete", "/api/v1/uploads/{id}", upload_view()),
        ("put", "/api/v1/uploads/{id}/chunks/{ix}", upload_view()),
        ("post", "/api/v1/uploads/{id}/complete", upload_view()),
    ]
}
