//! The exchange service in process, on SQLite (and PostgreSQL when the tests have one) and the
//! local-disk object store: resumable uploads, content addressing, immutable versions,
//! publication, listings, lineage, residency and tenant isolation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "integration tests: helpers fail loudly")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use data::exchange::{
    ContractIn, DataError, DatasetIn, Exchange, Limits, ListingIn, Mode, Offer, Price, StorePlace, UploadIn, ValuationIn,
};
use sha2::{Digest, Sha256};

struct Still;
impl vocab::Clock for Still {
    fn now_ms(&self) -> i64 {
        1_000
    }
}

const CHUNK: i64 = 1024;

async fn stores() -> Vec<store::Store> {
    let mut v = vec![store::Store::memory().await.unwrap()];
    if let Some(url) = store::testing::fresh_postgres().await {
        v.push(store::Store::connect_postgres(&url).await.unwrap());
    }
    v
}

fn exchange(store: store::Store, dir: &std::path::Path) -> Exchange {
    let objects = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap());
    let n = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(move |p: &str| format!("{p}_{}", n.fetch_add(1, Ordering::SeqCst)));
    let limits = Limits { chunk_bytes: CHUNK, max_open_uploads: 3, ..Limits::default() };
    let place = Some(StorePlace { hub: "gz".into(), province: "Guangdong".into(), cluster: None });
    Exchange::new(store, objects, Arc::new(Still), ids, limits, place)
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

fn file(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

async fn upload(x: &Exchange, tenant: &str, content: &[u8]) -> String {
    let up = x.start_upload(tenant, UploadIn { sha256: sha(content), size_bytes: content.len() as i64, name: None }).await.unwrap();
    for (ix, c) in content.chunks(CHUNK as usize).enumerate() {
        x.put_chunk(tenant, &up.id, ix as i64, Bytes::copy_from_slice(c), None).await.unwrap();
    }
    x.complete_upload(tenant, &up.id).await.unwrap();
    sha(content)
}

#[tokio::test]
async fn an_upload_resumes_in_any_order_and_its_object_appears_only_when_checked() {
    for store in stores().await {
        let dir = tempfile::tempdir().unwrap();
        let x = exchange(store, dir.path());
        let content = file(3 * CHUNK as usize + 100);
        let up = x
            .start_upload("a", UploadIn { sha256: sha(&content), size_bytes: content.len() as i64, name: Some("f.csv".into()) })
            .await
            .unwrap();
        assert_eq!((up.chunks, up.missing.clone()), (4, vec![0, 1, 2, 3]));
        let chunks: Vec<&[u8]> = content.chunks(CHUNK as usize).collect();
        x.put_chunk("a", &up.id, 3, Bytes::copy_from_slice(chunks[3]), Some(&sha(chunks[3]))).await.unwrap();
        x.put_chunk("a", &up.id, 1, Bytes::copy_from_slice(chunks[1]), None).await.unwrap();
        let status = x.upload_status("a", &up.id).await.unwrap();
        assert_eq!(status.missing, vec![0, 2]);
        // Completing early says what is missing, and nothing appears.
        assert!(matches!(x.complete_upload("a", &up.id).await, Err(DataError::Conflict(_))));
        let final_path = dir.path().join("objects").join("a").join(sha(&content));
        assert!(!final_path.exists());
        // A chunk of the wrong size or damaged on the way is refused, naming the field.
        let e = x.put_chunk("a", &up.id, 0, Bytes::from_static(b"short"), None).await.unwrap_err();
        assert!(matches!(&e, DataError::Invalid { field, .. } if field == "body"), "{e}");
        let e = x.put_chunk("a", &up.id, 0, Bytes::copy_from_slice(chunks[0]), Some(&sha(b"other"))).await.unwrap_err();
        assert!(matches!(&e, DataError::Invalid { field, .. } if field == "x-chunk-sha256"), "{e}");
        for ix in [0, 2, 2] {
            x.put_chunk("a", &up.id, ix, Bytes::copy_from_slice(chunks[ix as usize]), None).await.unwrap();
        }
        let done = x.complete_upload("a", &up.id).await.unwrap();
        assert_eq!((done.state.as_str(), done.received), ("complete", 4));
        assert_eq!(std::fs::read(&final_path).unwrap(), content);
        assert_eq!(x.object("a", &sha(&content)).await.unwrap(), content);
        // Completing again is the same; the staged chunks are gone.
        assert_eq!(x.complete_upload("a", &up.id).await.unwrap().state, "complete");
        assert!(!dir.path().join("staging").join(&up.id).join("00000000").exists());
        // The same content again completes at once.
        let again = x.start_upload("a", UploadIn { sha256: sha(&content), size_bytes: content.len() as i64, name: None }).await.unwrap();
        assert_eq!(again.state, "complete");
        // Another tenant's upload and object answer as missing ones.
        assert!(matches!(x.upload_status("b", &up.id).await, Err(DataError::NotFound { .. })));
        assert!(matches!(x.object("b", &sha(&content)).await, Err(DataError::NotFound { .. })));
    }
}

#[tokio::test]
async fn chunks_that_do_not_add_up_to_the_declared_hash_are_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(stores().await.remove(0), dir.path());
    let content = file(2 * CHUNK as usize);
    let up = x.start_upload("a", UploadIn { sha256: sha(&content), size_bytes: content.len() as i64, name: None }).await.unwrap();
    x.put_chunk("a", &up.id, 0, Bytes::copy_from_slice(&content[..CHUNK as usize]), None).await.unwrap();
    x.put_chunk("a", &up.id, 1, Bytes::from(vec![0u8; CHUNK as usize]), None).await.unwrap();
    let e = x.complete_upload("a", &up.id).await.unwrap_err();
    assert!(e.to_string().contains("not the declared"), "{e}");
    assert!(!dir.path().join("objects").join("a").join(sha(&content)).exists());
    assert_eq!(x.upload_status("a", &up.id).await.unwrap().missing, vec![0, 1]);
}

#[tokio::test]
async fn upload_declarations_are_checked_and_open_uploads_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(stores().await.remove(0), dir.path());
    let bad = |sha256: &str, size_bytes| UploadIn { sha256: sha256.into(), size_bytes, name: None };
    let field = |e: DataError| match e {
        DataError::Invalid { field, .. } => field,
        other => panic!("{other}"),
    };
    assert_eq!(field(x.start_upload("a", bad("xyz", 10)).await.unwrap_err()), "sha256");
    assert_eq!(field(x.start_upload("a", bad(&sha(b"x"), 0)).await.unwrap_err()), "size_bytes");
    for i in 0..3 {
        x.start_upload("a", bad(&sha(&[i]), 10)).await.unwrap();
    }
    assert!(matches!(x.start_upload("a", bad(&sha(b"4"), 10)).await, Err(DataError::Limit(_))));
    x.start_upload("b", bad(&sha(b"4"), 10)).await.unwrap();
}

#[tokio::test]
async fn open_uploads_reserve_their_size_against_the_tenants_quota() {
    let dir = tempfile::tempdir().unwrap();
    let objects = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let n = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(move |p: &str| format!("{p}_{}", n.fetch_add(1, Ordering::SeqCst)));
    let limits = Limits { chunk_bytes: CHUNK, max_tenant_bytes: 5000, ..Limits::default() };
    let x = Exchange::new(stores().await.remove(0), objects, Arc::new(Still), ids, limits, None);
    let declare = |b: u8, size: i64| UploadIn { sha256: sha(&[b]), size_bytes: size, name: None };
    x.start_upload("a", declare(1, 3000)).await.unwrap();
    // Nothing is stored yet, but the open upload holds its 3000 bytes.
    let e = x.start_upload("a", declare(2, 3000)).await.unwrap_err();
    assert!(matches!(&e, DataError::Limit(m) if m.contains("holds 3000")), "{e}");
    let small = x.start_upload("a", declare(3, 2000)).await.unwrap();
    x.start_upload("b", declare(2, 3000)).await.unwrap();
    // Cancelling gives the reservation back; a cancelled upload takes no more chunks.
    let first = x.upload_status("a", &small.id).await.unwrap();
    assert_eq!(x.cancel_upload("a", &first.id).await.unwrap().state, "cancelled");
    x.start_upload("a", declare(2, 2000)).await.unwrap();
    assert!(matches!(x.put_chunk("a", &first.id, 0, Bytes::from(vec![0u8; CHUNK as usize]), None).await, Err(DataError::Conflict(_))));
    assert!(matches!(x.cancel_upload("b", &first.id).await, Err(DataError::NotFound { .. })));
}

fn record(version: &str, sha256: &str, derived_from: Option<&str>) -> String {
    let mut doc = serde_json::json!({
        "@context": {"@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/", "cr": "http://mlcommons.org/croissant/",
                     "dct": "http://purl.org/dc/terms/", "conformsTo": "dct:conformsTo", "prov": "http://www.w3.org/ns/prov#",
                     "recordSet": "cr:recordSet", "field": "cr:field", "source": "cr:source", "fileObject": "cr:fileObject",
                     "extract": "cr:extract", "column": "cr:column", "dataType": {"@id": "cr:dataType", "@type": "@vocab"}},
        "@type": "sc:Dataset", "name": "loans", "conformsTo": "http://mlcommons.org/croissant/1.1",
        "version": version, "license": "https://spdx.org/licenses/CC-BY-4.0.html",
        "distribution": [
            {"@type": "cr:FileObject", "@id": "loans.csv", "name": "loans.csv", "contentUrl": "data/loans.csv",
             "encodingFormat": "text/csv", "sha256": sha256},
            {"@type": "cr:FileObject", "@id": "elsewhere", "name": "elsewhere", "contentUrl": "https://example.org/x.csv",
             "encodingFormat": "text/csv", "sha256": sha256}
        ],
        "recordSet": [{"@type": "cr:RecordSet", "@id": "rows", "name": "rows", "field": [
            {"@type": "cr:Field", "@id": "rows/amount", "name": "amount", "dataType": "sc:Float",
             "source": {"fileObject": {"@id": "loans.csv"}, "extract": {"column": "amount"}}}]}]
    });
    if let Some(p) = derived_from {
        doc["prov:wasDerivedFrom"] = serde_json::json!({"@id": p});
    }
    doc.to_string()
}

#[tokio::test]
async fn versions_are_immutable_published_when_their_files_are_held_and_listed() {
    for store in stores().await {
        let dir = tempfile::tempdir().unwrap();
        let x = exchange(store, dir.path());
        x.create_dataset("a", DatasetIn { id: "loans".into(), residency: Some("province:guangdong".into()) }).await.unwrap();
        assert!(matches!(x.create_dataset("a", DatasetIn { id: "loans".into(), residency: None }).await, Err(DataError::Conflict(_))));
        let e = x.create_dataset("a", DatasetIn { id: "far".into(), residency: Some("province:Sichuan".into()) }).await.unwrap_err();
        assert!(matches!(&e, DataError::Invalid { field, .. } if field == "residency"), "{e}");
        let content = file(2500);
        let (v, created) = x.add_version("a", "loans", &record("1.0.0", &sha(&content), None)).await.unwrap();
        assert!(created);
        assert_eq!((v.state.as_str(), v.missing_files.clone()), ("draft", vec!["loans.csv".to_string()]));
        assert!(!v.summary.files[1].hosted);
        // The same record again is the same version; other content under its number is refused.
        assert!(!x.add_version("a", "loans", &record("1.0.0", &sha(&content), None)).await.unwrap().1);
        let other = record("1.0.0", &sha(b"other"), None);
        assert!(matches!(x.add_version("a", "loans", &other).await, Err(DataError::Conflict(_))));
        let e = x.add_version("a", "loans", &record("1.0", &sha(&content), None)).await.unwrap_err();
        assert!(matches!(&e, DataError::Invalid { field, .. } if field == "version"), "{e}");
        // Not publishable, nor listable, until its file is held.
        assert!(matches!(x.publish("a", "loans", "1.0.0").await, Err(DataError::Invalid { .. })));
        assert!(matches!(x.set_listing("a", "loans", Some(listing(Price::PerCall { fen: 1 }))).await, Err(DataError::Invalid { .. })));
        upload(&x, "a", &content).await;
        let published = x.publish("a", "loans", "1.0.0").await.unwrap();
        assert_eq!(published.state, "published");
        assert_eq!(x.file("a", "loans", "1.0.0", "loans.csv").await.unwrap().1, content);
        // Kept in Guangdong, so never offered for download.
        let e = x.set_listing("a", "loans", Some(listing(Price::PerCall { fen: 1 }))).await.unwrap_err();
        assert!(matches!(&e, DataError::Invalid { field, .. } if field == "offer.modes"), "{e}");
        let compute_only = ListingIn {
            version: "1.0.0".into(),
            offer: Offer { price: Price::Flat { fen: 0 }, modes: vec![], max_days: 30, output: Default::default() },
        };
        assert!(x.set_listing("a", "loans", Some(compute_only)).await.is_err(), "an offer needs a mode");
        x.create_dataset("a", DatasetIn { id: "open".into(), residency: None }).await.unwrap();
        x.add_version("a", "open", &record("1.0.0", &sha(&content), None)).await.unwrap();
        x.publish("a", "open", "1.0.0").await.unwrap();
        x.set_listing("a", "open", Some(listing(Price::PerCall { fen: 1 }))).await.unwrap();
        let catalogue = x.catalogue().await.unwrap();
        assert_eq!(catalogue.len(), 1);
        assert_eq!(catalogue[0].1.iri, "urn:aiplus:dataset:a/open@1.0.0");
        // Lineage: a link to this exchange must name a version the tenant may see.
        x.create_dataset("b", DatasetIn { id: "derived".into(), residency: None }).await.unwrap();
        let bad = record("1.0.0", &sha(&content), Some("urn:aiplus:dataset:a/loans@9.9.9"));
        let e = x.add_version("b", "derived", &bad).await.unwrap_err();
        assert!(matches!(&e, DataError::Invalid { field, .. } if field == "prov:wasDerivedFrom[0]"), "{e}");
        let unlisted = record("1.0.0", &sha(&content), Some("urn:aiplus:dataset:a/loans@1.0.0"));
        assert!(x.add_version("b", "derived", &unlisted).await.is_err(), "another tenant's unlisted dataset is not seen");
        let good = record("1.0.0", &sha(&content), Some("urn:aiplus:dataset:a/open@1.0.0"));
        let (d, _) = x.add_version("b", "derived", &good).await.unwrap();
        assert_eq!(d.summary.derived_from, vec!["urn:aiplus:dataset:a/open@1.0.0"]);
        // Another tenant's dataset answers as a missing one.
        assert!(matches!(x.dataset("b", "loans").await, Err(DataError::NotFound { .. })));
        assert!(matches!(x.file("b", "loans", "1.0.0", "loans.csv").await, Err(DataError::NotFound { .. })));
    }
}

#[tokio::test]
async fn an_invalid_record_is_refused_with_mlcroissants_errors() {
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(stores().await.remove(0), dir.path());
    x.create_dataset("a", DatasetIn { id: "d".into(), residency: None }).await.unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&record("1.0.0", &sha(b"x"), None)).unwrap();
    doc["distribution"][0].as_object_mut().unwrap().remove("encodingFormat");
    let e = x.add_version("a", "d", &doc.to_string()).await.unwrap_err();
    let DataError::Croissant(report) = e else { panic!("{e}") };
    assert!(report.to_string().contains("Property \"https://schema.org/encodingFormat\" is mandatory"), "{report}");
}

fn listing(price: Price) -> ListingIn {
    ListingIn { version: "1.0.0".into(), offer: Offer { price, modes: vec![Mode::Download], max_days: 30, output: Default::default() } }
}

/// A training table of three contributors (ann's rows fit the test set best, cy's worst) and a
/// test table, both numeric with the label last.
fn tables() -> (Vec<u8>, Vec<u8>) {
    let mut train = String::from("x,y,who,label\n");
    for i in 0..30 {
        let (x, y) = (f64::from(i % 10) / 10.0, f64::from(i / 10) / 3.0);
        let label = u8::from(x > 0.45);
        let (who, label) = match i % 3 {
            0 => ("ann", label),
            1 => ("bo", label),
            _ => ("cy", if i % 2 == 0 { 1 - label } else { label }),
        };
        train.push_str(&format!("{x},{y},{who},{label}\n"));
    }
    let mut test = String::from("x,y,label\n");
    for i in 0..20 {
        let (x, y) = (f64::from(i) / 20.0 + 0.01, f64::from(i % 4) / 4.0);
        test.push_str(&format!("{x},{y},{}\n", u8::from(x > 0.45)));
    }
    (train.into_bytes(), test.into_bytes())
}

fn table_record(train_sha: &str, test_sha: &str) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(&record("1.0.0", train_sha, None)).unwrap();
    doc["distribution"] = serde_json::json!([
        {"@type": "cr:FileObject", "@id": "train.csv", "name": "train.csv", "contentUrl": "train.csv", "encodingFormat": "text/csv", "sha256": train_sha},
        {"@type": "cr:FileObject", "@id": "test.csv", "name": "test.csv", "contentUrl": "test.csv", "encodingFormat": "text/csv", "sha256": test_sha}
    ]);
    doc["recordSet"][0]["field"][0]["source"]["fileObject"]["@id"] = serde_json::json!("train.csv");
    doc.to_string()
}

#[tokio::test]
async fn a_contracts_revenue_is_settled_among_three_contributors_exactly_and_once() {
    for store in stores().await {
        let dir = tempfile::tempdir().unwrap();
        let x = exchange(store.clone(), dir.path());
        let (train, test) = tables();
        upload(&x, "seller", &train).await;
        upload(&x, "seller", &test).await;
        x.create_dataset("seller", DatasetIn { id: "credit".into(), residency: None }).await.unwrap();
        x.add_version("seller", "credit", &table_record(&sha(&train), &sha(&test))).await.unwrap();
        x.publish("seller", "credit", "1.0.0").await.unwrap();
        let v = x
            .value_version(
                "seller",
                "credit",
                "1.0.0",
                serde_json::from_value::<ValuationIn>(serde_json::json!({
                "train_file": "train.csv", "test_file": "test.csv", "k": 3, "contributor_column": "who"}))
                .unwrap(),
            )
            .await
            .unwrap();
        let names: Vec<&str> = v.contributors.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(names, ["ann", "bo", "cy"]);
        let sum: f64 = v.contributors.iter().map(|c| c.value).sum();
        assert!((sum - v.utility).abs() < 1e-9, "efficiency: the shares add up to the utility");
        assert_eq!(v.values.len(), 30);
        x.set_listing("seller", "credit", Some(listing(Price::PerCall { fen: 337 }))).await.unwrap();
        // No contract, no read; a contract for a mode not offered is refused.
        let ask =
            |mode| ContractIn { seller: "seller".into(), dataset: "credit".into(), purpose: "风控模型训练".into(), days: 30, mode };
        let c = x.sign_contract("buyer", ask(Mode::Download)).await.unwrap();
        assert!(matches!(x.read_under_contract("other", &c.id, "train.csv").await, Err(DataError::NotFound { .. })));
        for _ in 0..3 {
            let (_, bytes) = x.read_under_contract("buyer", &c.id, "train.csv").await.unwrap();
            assert_eq!(bytes, train);
        }
        // 3 reads at 337 fen: 1011 fen; a 10% fee of 101 fen; 910 fen to split.
        let period = "1970-01";
        let settled = x.settle(period).await.unwrap();
        assert_eq!(settled.len(), 1);
        let s = &settled[0];
        assert_eq!((s.revenue_fen, s.fee_fen, s.created), (1011, 101, true));
        assert_eq!(s.lines.iter().map(|l| l.fen).sum::<i64>(), 1011, "the entries sum to the revenue");
        let payouts: Vec<(&str, i64)> = s.lines.iter().filter(|l| l.role == "payout").map(|l| (l.party.as_str(), l.fen)).collect();
        assert_eq!(payouts.len(), 3, "{payouts:?}");
        let positive: f64 = v.contributors.iter().map(|c| c.value.max(0.0)).sum();
        for (party, fen) in &payouts {
            let share = v.contributors.iter().find(|c| c.id == *party).unwrap().value.max(0.0) / positive;
            assert!((*fen as f64 - 910.0 * share).abs() < 1.0, "{party}: {fen} fen for a share of {share}");
        }
        // The ledger holds the same entries; settling again changes nothing.
        let entries = || async {
            let rows = store.usage::<serde_json::Value>(Some("seller"), Some("data"), 0, i64::MAX, 1000).await.unwrap();
            rows.into_iter()
                .filter(|r| r.doc["subject"]["kind"] == "settlement")
                .map(|r| r.doc["amount_fen"].as_i64().unwrap())
                .collect::<Vec<_>>()
        };
        let first = entries().await;
        assert_eq!(first.iter().sum::<i64>(), 1011);
        let again = x.settle(period).await.unwrap();
        assert_eq!((again[0].created, again[0].lines.clone()), (false, s.lines.clone()));
        assert_eq!(entries().await, first);
    }
}

struct Moving(std::sync::atomic::AtomicI64);
impl vocab::Clock for Moving {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_registration_goes_through_review_notice_and_objections_to_a_code_every_step_logged() {
    use data::registry::{Action, RegistrationIn, State};
    for store in stores().await {
        let dir = tempfile::tempdir().unwrap();
        let key = tlog::SignerKey::from_seed("aiplus.test/log", [3; 32]).unwrap();
        let log = Arc::new(tlog::Log::open(store.clone(), key, 0, None, None).await.unwrap());
        let clock = Arc::new(Moving(std::sync::atomic::AtomicI64::new(1_000)));
        let objects = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let n = Arc::new(AtomicUsize::new(0));
        let ids = Arc::new(move |p: &str| format!("{p}_{}", n.fetch_add(1, Ordering::SeqCst)));
        let x = Exchange::new(store, objects, clock.clone(), ids, Limits::default(), None).with_registry(log.clone(), 10_000);
        let content = file(100);
        upload(&x, "alpha", &content).await;
        x.create_dataset("alpha", DatasetIn { id: "loans".into(), residency: None }).await.unwrap();
        x.add_version("alpha", "loans", &record("1.0.0", &sha(&content), None)).await.unwrap();
        let app = |kind: &str, previous: Option<&str>, holder: &str| -> RegistrationIn {
            serde_json::from_value(serde_json::json!({
                "kind": kind, "dataset": "loans", "version": "1.0.0", "previous": previous,
                "rights": [{"right": "holding", "holder": holder, "scope": "全部数据", "from": "2026-01-01"},
                           {"right": "operation", "holder": "alpha", "scope": "数据产品经营", "from": "2026-01-01", "until": "2030-12-31"}],
                "authorization": {"basis": "self_collected", "description": "自有信贷业务数据", "evidence_sha256": sha(&content)},
                "classification": {"category": "enterprise", "grade": "important"},
                "licence_chain": [{"source": "alpha 信贷系统", "licence": "proprietary"}]
            }))
            .unwrap()
        };
        // Only a published version is registered.
        assert!(matches!(x.apply("alpha", "tenant-admin", app("first", None, "alpha")).await, Err(DataError::Invalid { .. })));
        x.publish("alpha", "loans", "1.0.0").await.unwrap();
        let r = x.apply("alpha", "tenant-admin", app("first", None, "alpha")).await.unwrap();
        assert_eq!(r.state, State::Applied);
        assert!(matches!(x.apply("alpha", "tenant-admin", app("first", None, "alpha")).await, Err(DataError::Conflict(_))));
        // Before its notice it is alpha's alone: another tenant cannot find it to object.
        assert!(matches!(x.object_to("beta", "tenant-admin", &r.id, "异议").await, Err(DataError::NotFound { .. })));
        let r = x.act_on_registration("operator", &r.id, Action::Pass { reason: "形式审查通过".into() }).await.unwrap();
        assert_eq!((r.state, r.notice_until_ms), (State::Notice, Some(11_000)));
        assert_eq!(x.notices().await.unwrap().len(), 1);
        let r = x.object_to("beta", "tenant-admin", &r.id, "该数据部分来自我方").await.unwrap();
        let objection = r.objections[0].id.clone();
        clock.0.store(20_000, Ordering::SeqCst);
        assert!(
            matches!(x.act_on_registration("operator", &r.id, Action::Finalize).await, Err(DataError::Conflict(_))),
            "an objection is pending"
        );
        x.act_on_registration("operator", &r.id, Action::Dismiss { objection, reason: "异议缺乏证据".into() }).await.unwrap();
        let r = x.act_on_registration("operator", &r.id, Action::Finalize).await.unwrap();
        assert_eq!((r.state, r.code.as_deref()), (State::Registered, Some("DR-1970-000001")));
        // Every step is a leaf of the log, in order.
        let actions: Vec<&str> = r.steps.iter().map(|s| s.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "registration.applied",
                "registration.review_passed",
                "registration.objected",
                "registration.objection_dismissed",
                "registration.registered"
            ]
        );
        for s in &r.steps {
            let entry = log.entry(s.log_index).await.unwrap();
            assert!(entry.leaf.contains(&s.action) && entry.leaf.contains(&format!("registration/{}", r.id)), "{}", entry.leaf);
        }
        // A transfer must change the holder; one that does supersedes the first once made.
        let code = r.code.clone().unwrap();
        let same = x.apply("alpha", "tenant-admin", app("transfer", Some(&code), "alpha")).await.unwrap_err();
        assert!(matches!(&same, DataError::Invalid { field, .. } if field == "rights"), "{same}");
        let t = x.apply("alpha", "tenant-admin", app("transfer", Some(&code), "gamma")).await.unwrap();
        x.act_on_registration("operator", &t.id, Action::Pass { reason: "ok".into() }).await.unwrap();
        clock.0.store(40_000, Ordering::SeqCst);
        let t = x.act_on_registration("operator", &t.id, Action::Finalize).await.unwrap();
        assert_eq!(t.code.as_deref(), Some("DR-1970-000002"));
        assert_eq!(x.registration(Some("alpha"), &r.id).await.unwrap().state, State::Superseded);
        assert!(matches!(x.registration(Some("beta"), &r.id).await, Err(DataError::NotFound { .. })));
    }
}
