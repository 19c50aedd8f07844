//! Review-E as separate OS processes on PostgreSQL, each connected as the
//! `review_e` role: a policy dropped into one process's folder, or uploaded to
//! the other, is followed by both without a restart, and decisions change.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{NewEvent, Store};
use serde_json::{json, Value};

use common::{bookkeeper, build_policy as build, Service};

const AUTHOR: &str = "author-token-0123456789";

/// `bookkeeper serve review-e` as the `review_e` role, following `folder` if given.
fn serve(db: &TestDb, folder: Option<&Path>) -> Service {
    let mut env = vec![
        ("REVIEW_E_ADDR", "127.0.0.1:0".to_string()),
        ("REVIEW_E_AUTHOR_TOKENS", format!("{AUTHOR}:finance-lead")),
        ("REVIEW_E_REVIEWER_TOKENS", "reviewer-token-0123456789:kari".into()),
        // Generous, so a busy test machine never times out a good policy.
        ("REVIEW_E_POLICY_DEADLINE_MS", "500".into()),
    ];
    if let Some(folder) = folder {
        env.push(("REVIEW_E_POLICY_DIR", folder.display().to_string()));
    }
    common::serve("review-e", &db.role_url("review_e"), &env)
}

/// The names of the policies `review_e` lists.
async fn policies(review_e: &Service) -> Vec<String> {
    let r = reqwest::Client::new().get(format!("{}/policies", review_e.base)).bearer_auth(AUTHOR).send().await;
    let Ok(r) = r else { return vec![] };
    let v: Value = r.json().await.unwrap_or_default();
    v["policies"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Waits until `review_e` lists `name`; how long that took.
async fn wait_for(review_e: &Service, name: &str) -> Duration {
    let started = Instant::now();
    while !policies(review_e).await.iter().any(|p| p == name) {
        assert!(started.elapsed() < Duration::from_secs(20), "{} never followed `{name}`", review_e.base);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

async fn decision(db: &TestDb, id: &str) -> bookkeeper_core::RecordedEvent {
    let started = Instant::now();
    loop {
        if let Some(d) = db.store.read_correlation(id).await.unwrap().into_iter().find(|e| e.actor == "system:auto") {
            return d;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no decision for {id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn propose(db: &TestDb, id: &str) {
    let book_e = Store::connect(&db.role_url("book_e")).await.unwrap();
    let e = NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", id).with_payload(json!({
        "requested_by": "user:ola",
        "receipt": {"sha256": "b".repeat(64), "filename": "r.pdf", "content_type": "application/pdf"},
        "amount": {"minor": 25_000, "currency": "NOK"}, "vendor": {"name": "Kiwi"}
    }));
    book_e.append_events(vec![e]).await.unwrap();
    book_e.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_review_e_processes_follow_the_same_policy_swaps() {
    let Some(db) = TestDb::postgres().await else { return };
    let work = std::env::temp_dir().join(format!("review-e-processes-{}", uuid::Uuid::new_v4()));
    let folder = work.join("policies");
    std::fs::create_dir_all(&folder).unwrap();
    build("small-receipts", &work.join("small-receipts.wasm"));
    build("unusual-vendor", &work.join("unusual-vendor.wasm"));

    let mut a = serve(&db, Some(&folder));
    let mut b = serve(&db, None);

    // Nothing is active yet: decisions fail closed.
    propose(&db, "before").await;
    assert_eq!(decision(&db, "before").await.event_type, "ReceiptAttachmentEscalated");

    // A file dropped into A's folder is in force in B too.
    std::fs::copy(work.join("small-receipts.wasm"), folder.join("small-receipts.wasm")).unwrap();
    wait_for(&a, "small-receipts").await;
    let followed = wait_for(&b, "small-receipts").await;
    eprintln!("B followed the folder swap in {followed:?}");
    propose(&db, "after-file").await;
    let d = decision(&db, "after-file").await;
    assert!(d.reason().unwrap().contains("small-receipts: first receipt from Kiwi"), "{:?}", d.reason());

    // A component pushed to B (with the CLI, in shadow mode) is in force in A too.
    let pushed = bookkeeper()
        .args(["policy", "push", "--shadow", "--url", &b.base, "--token", AUTHOR])
        .arg(work.join("unusual-vendor.wasm"))
        .output()
        .unwrap();
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    assert!(String::from_utf8_lossy(&pushed.stdout).contains("published \"unusual-vendor\""));
    wait_for(&a, "unusual-vendor").await;
    let listed = bookkeeper().args(["policy", "list", "--url", &a.base, "--token", AUTHOR]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.contains("small-receipts") && listed.contains("folder:small-receipts.wasm"), "{listed}");
    assert!(
        listed.contains("unusual-vendor") && listed.contains("shadow") && listed.contains("user:finance-lead"),
        "{listed}"
    );
    propose(&db, "after-upload").await;
    let d = decision(&db, "after-upload").await;
    let verdicts = d.metadata["verdicts"].as_array().unwrap();
    let shadow = verdicts.iter().find(|v| v["policy"] == "unusual-vendor").expect("the shadow verdict is recorded");
    assert_eq!(shadow["mode"], "shadow");

    // The recorded decisions re-run identically, and a backtest runs over them.
    let verify = bookkeeper().args(["policy", "verify"]).env("DATABASE_URL", &db.url).output().unwrap();
    let report = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(verify.status.success(), "{report}{}", String::from_utf8_lossy(&verify.stderr));
    assert!(report.contains("3 automatic decisions re-run; 3 identical, 0 mismatched"), "{report}");
    let replay = bookkeeper()
        .args(["policy", "replay"])
        .arg(work.join("unusual-vendor.wasm"))
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&replay.stdout).to_string();
    assert!(replay.status.success(), "{report}");
    assert!(report.contains("over 3 recorded decisions") && report.contains("unchanged"), "{report}");

    assert!(a.terminate().success(), "A should stop cleanly on SIGTERM");
    assert!(b.terminate().success(), "B should stop cleanly on SIGTERM");
    let _ = std::fs::remove_dir_all(&work);
    db.cleanup().await;
}
