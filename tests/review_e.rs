//! Review-E as separate OS processes on PostgreSQL, each connected as the
//! `review_e` role: a policy dropped into one process's folder, or uploaded to
//! the other, is followed by both without a restart, and decisions change.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{NewEvent, Store};
use serde_json::{json, Value};

use common::build_policy as build;

const AUTHOR: &str = "author-token-0123456789";

struct Process {
    child: Child,
    base: String,
}

fn serve(db: &TestDb, folder: Option<&Path>) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bookkeeper"));
    cmd.args(["serve", "review-e"])
        .env("DATABASE_URL", db.role_url("review_e"))
        .env("REVIEW_E_ADDR", "127.0.0.1:0")
        .env("REVIEW_E_AUTHOR_TOKENS", format!("{AUTHOR}:finance-lead"))
        .env("REVIEW_E_REVIEWER_TOKENS", "reviewer-token-0123456789:kari")
        .env("BOOKKEEPER_LOG", "info")
        // Generous, so a busy test machine never times out a good policy.
        .env("REVIEW_E_POLICY_DEADLINE_MS", "500")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(folder) = folder {
        cmd.env("REVIEW_E_POLICY_DIR", folder);
    }
    let mut child = cmd.spawn().expect("start bookkeeper serve review-e");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(60)).expect("Review-E did not report its address");
    Process { child, base }
}

impl Process {
    async fn policies(&self) -> Vec<String> {
        let r = reqwest::Client::new().get(format!("{}/policies", self.base)).bearer_auth(AUTHOR).send().await;
        let Ok(r) = r else { return vec![] };
        let v: Value = r.json().await.unwrap_or_default();
        v["policies"]
            .as_array()
            .map(|a| a.iter().filter_map(|p| p["name"].as_str().map(String::from)).collect())
            .unwrap_or_default()
    }

    async fn wait_for(&self, name: &str) -> Duration {
        let started = Instant::now();
        while !self.policies().await.iter().any(|p| p == name) {
            assert!(started.elapsed() < Duration::from_secs(20), "{} never followed `{name}`", self.base);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        started.elapsed()
    }

    /// SIGTERM, then the exit status: a graceful stop exits 0.
    fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("Review-E did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
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

    let a = serve(&db, Some(&folder));
    let b = serve(&db, None);

    // Nothing is active yet: decisions fail closed.
    propose(&db, "before").await;
    assert_eq!(decision(&db, "before").await.event_type, "ReceiptAttachmentEscalated");

    // A file dropped into A's folder is in force in B too.
    std::fs::copy(work.join("small-receipts.wasm"), folder.join("small-receipts.wasm")).unwrap();
    a.wait_for("small-receipts").await;
    let followed = b.wait_for("small-receipts").await;
    eprintln!("B followed the folder swap in {followed:?}");
    propose(&db, "after-file").await;
    let d = decision(&db, "after-file").await;
    assert!(d.reason().unwrap().contains("small-receipts: first receipt from Kiwi"), "{:?}", d.reason());

    // A component pushed to B (with the CLI, in shadow mode) is in force in A too.
    let pushed = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
        .args(["policy", "push", "--shadow", "--url", &b.base, "--token", AUTHOR])
        .arg(work.join("unusual-vendor.wasm"))
        .output()
        .unwrap();
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    assert!(String::from_utf8_lossy(&pushed.stdout).contains("published \"unusual-vendor\""));
    a.wait_for("unusual-vendor").await;
    let listed = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
        .args(["policy", "list", "--url", &a.base, "--token", AUTHOR])
        .output()
        .unwrap();
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
    let verify = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
        .args(["policy", "verify"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stdout).to_string();
    assert!(verify.status.success(), "{report}{}", String::from_utf8_lossy(&verify.stderr));
    assert!(report.contains("3 automatic decisions re-run; 3 identical, 0 mismatched"), "{report}");
    let replay = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
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
