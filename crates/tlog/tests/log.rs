//! The log service over a real store (SQLite; PostgreSQL when the test server runs): appends
//! verify offline, tiles hash to the checkpoint, two writers share one log, and a rewritten
//! history stops the next start.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use serde_json::json;
use store::Store;
use tlog::tiles::{TilePath, read_bundle};
use tlog::{Checkpoint, Fact, Log, LogError, SignerKey, Tree, leaf_hash};

fn key() -> SignerKey {
    // golang.org/x/mod's example key: fixed, so a restart finds the same key.
    SignerKey::parse("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz").unwrap()
}

async fn append(log: &Log, i: u64) -> tlog::Appended {
    let record = json!({"model": format!("m{i}"), "reason": "test", "actor": "op-1"});
    log.append(
        &Fact { kind: "model.suspended", subject: &format!("model/m{i}"), actor_role: "operator", record: &record },
        1_000 + i as i64,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn appends_verify_offline_and_the_tiles_hash_to_the_checkpoint() {
    let dir = std::env::temp_dir().join(format!("tlog-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir).await.unwrap();
    let k = key();
    let v = k.verifier();
    let log = Log::open(store.clone(), k, 0, None, None).await.unwrap();
    // The empty log already has a signed checkpoint.
    assert_eq!(Checkpoint::open(&log.checkpoint().await.unwrap(), &v).unwrap().size, 0);
    for i in 0..300 {
        let a = append(&log, i).await;
        assert_eq!(a.index, i);
    }
    let cp = Checkpoint::open(&log.checkpoint().await.unwrap(), &v).unwrap();
    assert_eq!(cp.size, 300);
    for i in [0, 1, 137, 255, 256, 299] {
        let p = log.inclusion(i, None).await.unwrap();
        let got = p.verify(&v, Some(&log.checkpoint().await.unwrap())).unwrap();
        assert_eq!(got.size, 300);
        // The leaf is canonical JSON of the public part; the record stays out of it.
        assert!(p.leaf.starts_with("{\"actor_role\":\"operator\",\"at_ms\":") && !p.leaf.contains("op-1"), "{}", p.leaf);
        // A leaf changed in the document fails.
        let mut bad = p.clone();
        bad.leaf = bad.leaf.replace("suspended", "activated");
        assert!(bad.verify(&v, None).is_err());
    }
    // Proofs at an earlier size, and consistency between sizes.
    assert_eq!(log.inclusion(3, Some(10)).await.unwrap().verify(&v, None).unwrap().size, 10);
    let c = log.consistency(10, None).await.unwrap();
    c.verify(&v).unwrap();
    assert!(log.inclusion(300, None).await.is_err());

    // A mirror rebuilds the tree from the tiles alone: the full level-0 tile, the partial one
    // and the entry bundles agree, and give the checkpoint's root.
    let mut mirror = Tree::new();
    for (index, width) in [(0u64, 256u16), (1, 44)] {
        let tile = log.tile(&TilePath::Hashes { level: 0, index, width }.to_path()).await.unwrap().unwrap();
        let bundle = log.tile(&TilePath::Entries { index, width }.to_path()).await.unwrap().unwrap();
        let entries = read_bundle(&bundle).unwrap();
        assert_eq!(entries.len(), usize::from(width));
        for (e, h) in entries.iter().zip(tile.chunks(32)) {
            assert_eq!(leaf_hash(e).0.as_slice(), h);
            mirror.push(leaf_hash(e));
        }
    }
    assert_eq!(mirror.root(300).unwrap(), cp.root);
    let level1 = log.tile("tile/1/000.p/1").await.unwrap().unwrap();
    assert_eq!(level1, mirror.root(256).unwrap().0.to_vec());
    // Tiles that do not exist yet are not served.
    assert!(log.tile("tile/0/001").await.unwrap().is_none());
    assert!(log.tile("tile/entries/001.p/45").await.unwrap().is_none());

    // A restart rebuilds the same tree and accepts the store.
    drop(log);
    let log = Log::open(store.clone(), key(), 1, None, None).await.unwrap();
    assert_eq!(Checkpoint::open(&log.checkpoint().await.unwrap(), &v).unwrap(), cp);
    drop(log);

    // Tampering: a changed leaf, a changed record, a deleted entry; each stops the start.
    let row = store.log_entries(5, 1).await.unwrap().remove(0);
    store::testing::tamper_log(&store, 5, "leaf", &row.leaf.replace("m5", "m6")).await;
    assert!(matches!(Log::open(store.clone(), key(), 2, None, None).await, Err(LogError::Tampered(_))));
    store::testing::tamper_log(&store, 5, "leaf", &row.leaf).await;
    Log::open(store.clone(), key(), 2, None, None).await.unwrap();
    let row7 = store.log_entries(7, 1).await.unwrap().remove(0);
    store::testing::tamper_log(&store, 7, "record", "{\"reason\":\"nothing happened\"}").await;
    let err = Log::open(store.clone(), key(), 3, None, None).await.err().unwrap();
    assert!(err.to_string().contains("entry 7: the record does not match"), "{err}");
    store::testing::tamper_log(&store, 7, "record", &row7.record).await;
    store::testing::tamper_log(&store, 299, "delete", "").await;
    let err = Log::open(store.clone(), key(), 4, None, None).await.err().unwrap();
    assert!(err.to_string().contains("covers entries that are gone"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A leaf valid on its own (canonical, its record digest matching the record `{}`), as a forger
/// with the database would write it.
fn forged_leaf() -> tlog::Leaf {
    tlog::Leaf {
        actor_role: "operator".into(),
        at_ms: 0,
        kind: "model.active".into(),
        record_sha256: tlog::hash::sha256(b"{}").to_hex(),
        subject: "model/m".into(),
    }
}

/// Entries removed from the end together with their checkpoints leave a store that agrees with
/// itself: the last checkpoint the server saw (kept outside the store) catches it. A row stored
/// without its checkpoint was not written by the log, at start or while running.
#[tokio::test]
async fn a_rolled_back_or_forged_store_is_refused() {
    let store = Store::memory().await.unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let keep = seen.clone();
    let witness: tlog::log::Witness = std::sync::Arc::new(move |note: &str| *keep.lock().unwrap() = note.to_string());
    let log = Log::open(store.clone(), key(), 0, None, Some(witness)).await.unwrap();
    for i in 0..5 {
        append(&log, i).await;
    }
    let newest = seen.lock().unwrap().clone();
    assert_eq!(Checkpoint::open(&newest, &key().verifier()).unwrap().size, 5, "the witness heard every checkpoint");
    drop(log);
    // Roll back the last two entries with their checkpoints.
    for i in [4, 3] {
        store::testing::tamper_log(&store, i, "delete", "").await;
        store::testing::tamper_log(&store, i + 1, "delete-checkpoint", "").await;
    }
    Log::open(store.clone(), key(), 1, None, None).await.expect("without the outside copy the store agrees with itself");
    let err = Log::open(store.clone(), key(), 1, Some(&newest), None).await.err().unwrap();
    assert!(err.to_string().contains("entries were removed"), "{err}");

    // A forged row (valid on its own, with a matching record digest) has no checkpoint.
    let leaf = forged_leaf();
    store::testing::tamper_log(&store, 3, "forge", &serde_json::to_string(&leaf).unwrap()).await;
    let err = Log::open(store.clone(), key(), 2, None, None).await.err().unwrap();
    assert!(err.to_string().contains("entry 3 has no signed checkpoint"), "{err}");
}

/// A running log does not take in a forged row either: it is not served, and appends go on.
#[tokio::test]
async fn a_running_log_ignores_a_forged_row() {
    let store = Store::memory().await.unwrap();
    let log = Log::open(store.clone(), key(), 0, None, None).await.unwrap();
    append(&log, 0).await;
    let leaf = forged_leaf();
    store::testing::tamper_log(&store, 1, "forge", &serde_json::to_string(&leaf).unwrap()).await;
    assert!(log.checkpoint().await.is_err(), "the forged row is refused, not signed");
    assert!(log.inclusion(1, Some(2)).await.is_err());
}

/// A signing key other than the log's does not open the store: its checkpoints were not signed
/// by it.
#[tokio::test]
async fn another_key_cannot_take_over_the_log() {
    let store = Store::memory().await.unwrap();
    let log = Log::open(store.clone(), key(), 0, None, None).await.unwrap();
    append(&log, 0).await;
    drop(log);
    let other = SignerKey::from_seed("PeterNeumann", [1; 32]).unwrap();
    let err = Log::open(store, other, 1, None, None).await.err().unwrap();
    assert!(matches!(err, LogError::OtherKey { .. }), "{err}");
    assert!(err.to_string().contains("signed by key PeterNeumann+c74f20a3"), "{err}");
}

/// Two instances on one database append in turns and see each other's entries.
#[tokio::test]
async fn two_writers_share_one_log() {
    let Some(url) = store::testing::fresh_postgres().await else { return };
    let a = Log::open(Store::connect_postgres(&url).await.unwrap(), key(), 0, None, None).await.unwrap();
    let b = Log::open(Store::connect_postgres(&url).await.unwrap(), key(), 0, None, None).await.unwrap();
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let log = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move { append(&log, i).await.index }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    let v = key().verifier();
    for log in [&a, &b] {
        let p = log.inclusion(19, None).await.unwrap();
        assert_eq!(p.verify(&v, None).unwrap().size, 20);
    }
}
