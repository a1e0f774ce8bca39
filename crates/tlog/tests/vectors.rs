//! The shared vectors (`../shared/tlog/`, see its SOURCES.md), side by side with the reference
//! implementations they come from:
//! - transparency-dev/merkle `testdata/`: every inclusion, consistency, subtree inclusion and
//!   subtree consistency probe succeeds or fails as marked;
//! - its `testonly/constants.go`: the RFC 6962 roots and node hashes for sizes 0–8;
//! - the signed-note examples of C2SP and golang.org/x/mod, and Go's checkpoint golden.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::{Path, PathBuf};

use serde_json::Value;
use tlog::note::{self, SignerKey, VerifierKey};
use tlog::{Checkpoint, Hash, Tree, leaf_hash, proof};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tlog")
}

fn probes(kind: &str) -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    let mut dirs = vec![shared().join("transparency-dev-merkle/testdata").join(kind)];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("the shared tlog vectors") {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                out.push((p, v));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A base64 field as raw bytes (which may be the wrong length on purpose), or none.
fn bytes(v: &Value) -> Option<Vec<u8>> {
    use base64::Engine;
    v.as_str().map(|s| base64::engine::general_purpose::STANDARD.decode(s).unwrap())
}

/// A hash field; a wrong length fails the probe the way a verifier must.
fn hash(v: &Value) -> Result<Hash, String> {
    let b = bytes(v).unwrap_or_default();
    Hash::from_slice(&b).ok_or_else(|| format!("a hash of {} bytes", b.len()))
}

fn proof_of(v: &Value) -> Result<Vec<Hash>, String> {
    v.as_array().map_or(Ok(Vec::new()), |a| a.iter().map(hash).collect())
}

/// A consistency probe's proof and roots as raw bytes.
fn raw_consistency(p: &Value) -> (Vec<Vec<u8>>, Vec<u8>, Vec<u8>) {
    let raw = p["proof"].as_array().map_or(Vec::new(), |a| a.iter().map(|h| bytes(h).unwrap_or_default()).collect());
    (raw, bytes(&p["root1"]).unwrap_or_default(), bytes(&p["root2"]).unwrap_or_default())
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap()
}

fn run(kind: &str, check: impl Fn(&Value) -> Result<(), String>) -> usize {
    let all = probes(kind);
    let mut wrong = Vec::new();
    for (path, p) in &all {
        let want_err = p["wantErr"].as_bool().unwrap();
        let got = check(p);
        if got.is_err() != want_err {
            wrong.push(format!("{}: want error {want_err}, got {got:?} ({})", path.display(), p["desc"]));
        }
    }
    assert!(wrong.is_empty(), "{} of {} {kind} probes wrong:\n{}", wrong.len(), all.len(), wrong.join("\n"));
    all.len()
}

#[test]
fn every_merkle_probe_succeeds_or_fails_as_marked() {
    let inclusion = run("inclusion", |p| {
        let (leaf, root, pr) = (hash(&p["leafHash"])?, hash(&p["root"])?, proof_of(&p["proof"])?);
        proof::verify_inclusion(n(p, "leafIdx"), n(p, "treeSize"), &leaf, &pr, &root).map_err(|e| e.to_string())
    });
    // Consistency goes through the raw-bytes entry points: some probes have equal sizes and
    // equal roots that are not 32 bytes long, and must succeed.
    let consistency = run("consistency", |p| {
        let (raw, r1, r2) = raw_consistency(p);
        proof::verify_consistency_bytes(n(p, "size1"), n(p, "size2"), &raw, &r1, &r2).map_err(|e| e.to_string())
    });
    let subtree_inclusion = run("subtreeinclusion", |p| {
        let (leaf, root, pr) = (hash(&p["leafHash"])?, hash(&p["root"])?, proof_of(&p["proof"])?);
        proof::verify_subtree_inclusion(n(p, "leafIdx"), n(p, "start"), n(p, "end"), &leaf, &pr, &root).map_err(|e| e.to_string())
    });
    let subtree_consistency = run("subtreeconsistency", |p| {
        let (raw, r1, r2) = raw_consistency(p);
        proof::verify_subtree_consistency_bytes(n(p, "start"), n(p, "end"), n(p, "size"), &raw, &r1, &r2).map_err(|e| e.to_string())
    });
    // SOURCES.md counts 98 + 98 + 204 + 118 = 518 probes.
    assert_eq!((inclusion, consistency, subtree_inclusion, subtree_consistency), (98, 98, 204, 118));
}

/// RFC 6962's leaves, roots for sizes 0–8 and complete node hashes, from
/// transparency-dev/merkle `testonly/constants.go`.
#[test]
fn the_rfc6962_roots_for_sizes_0_to_8() {
    let src = std::fs::read_to_string(shared().join("transparency-dev-merkle/testonly/constants.go")).unwrap();
    let section = |start: &str, end: &str| -> Vec<String> {
        let s = &src[src.find(start).unwrap()..];
        let s = &s[..s.find(end).unwrap()];
        s.split("hd(\"").skip(1).map(|x| x[..x.find('"').unwrap()].to_string()).collect()
    };
    let leaves: Vec<Vec<u8>> = section("func LeafInputs", "func NodeHashes")
        .iter()
        .map(|h| (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect())
        .collect();
    let roots = section("func RootHashes", "func CompactTrees");
    let nodes = section("func NodeHashes", "func RootHashes");
    assert_eq!((leaves.len(), roots.len(), nodes.len()), (8, 8, 15), "the roots list starts with the empty root");
    let mut t = Tree::new();
    assert_eq!(t.root(0).unwrap().to_hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    for (i, l) in leaves.iter().enumerate() {
        t.push(leaf_hash(l));
        assert_eq!(t.root(i as u64 + 1).unwrap().to_hex(), roots[i], "root of size {}", i + 1);
    }
    // Levels 0..3 hold 8, 4, 2 and 1 nodes, in that order.
    let mut k = 0;
    for (level, width) in [(0usize, 8u64), (1, 4), (2, 2), (3, 1)] {
        for i in 0..width {
            assert_eq!(t.node(level, i).unwrap().to_hex(), nodes[k], "node {level}/{i}");
            k += 1;
        }
    }
}

/// C2SP's signed-note example and golang.org/x/mod's PeterNeumann note: the keys parse, the
/// notes open, our signature is byte for byte Go's (Ed25519 is deterministic), and a changed
/// text or a wrong key is refused.
#[test]
fn the_signed_note_examples_of_c2sp_and_golang() {
    let c2sp_vkey = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    let c2sp_note = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
    let spec = std::fs::read_to_string(shared().join("c2sp/signed-note.md")).unwrap();
    assert!(spec.contains(c2sp_vkey) && spec.contains(c2sp_note.trim_start_matches("This is an example message.\n\n")));
    let v = VerifierKey::parse(c2sp_vkey).unwrap();
    assert_eq!(note::open(c2sp_note, std::slice::from_ref(&v)).unwrap().text, "This is an example message.\n");
    assert!(note::open(&c2sp_note.replace("example message", "example massage"), &[v]).is_err());

    let go = std::fs::read_to_string(shared().join("golang-mod-sumdb/sumdb/note/example_test.go")).unwrap();
    let skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    let sig_line = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";
    assert!(go.contains(skey) && go.contains(vkey) && go.contains(sig_line));
    let text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    let signer = SignerKey::parse(skey).unwrap();
    assert_eq!(signer.verifier().encode(), vkey);
    let signed = signer.sign(text).unwrap();
    assert_eq!(signed, format!("{text}\n{sig_line}\n"));
    let opened = note::open(&signed, &[VerifierKey::parse(vkey).unwrap()]).unwrap();
    assert_eq!((opened.text.as_str(), opened.verified[0].id), (text, 0xc74f20a3));
    // Signatures by unknown keys are ignored, but one known signature must check.
    let other = SignerKey::from_seed("EnochRoot", [2; 32]).unwrap();
    let both = format!("{signed}{}", other.sign(text).unwrap().rsplit('\n').nth(1).unwrap());
    let both = format!("{both}\n");
    let o = note::open(&both, &[VerifierKey::parse(vkey).unwrap()]).unwrap();
    assert_eq!((o.verified.len(), o.unverified.len()), (1, 1));
    assert!(note::open(&signed, &[other.verifier()]).is_err());
    // Keys the Go tests call bad: a wrong length and an unknown algorithm.
    assert!(VerifierKey::parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==").is_err());
    assert!(VerifierKey::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW").is_err());
}

/// Go's sumdb checkpoint golden: the tree "go.sum database tree" of 123456789012 entries
/// whose root is the record hash of "hello world"; and the malformed ones it rejects.
#[test]
fn the_go_checkpoint_golden() {
    let go = std::fs::read_to_string(shared().join("golang-mod-sumdb/sumdb/tlog/note_test.go")).unwrap();
    let golden = "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n";
    assert!(go.contains(&golden.replace('\n', "\\n")));
    let c = Checkpoint::parse(golden).unwrap();
    assert_eq!((c.origin.as_str(), c.size, c.root), ("go.sum database tree", 123_456_789_012, leaf_hash(b"hello world")));
    assert_eq!(c.to_text(), golden);
    for bad in [
        "go.sum database tree\n0xabcdef\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBTOOBIG=\n",
        "go.sum database tree\n0123\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=",
    ] {
        assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
    }
    // C2SP's checkpoint example parses (its signature is by a key the spec does not publish).
    let ex = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    assert_eq!(Checkpoint::parse(ex).unwrap().size, 20_852_163);
}
