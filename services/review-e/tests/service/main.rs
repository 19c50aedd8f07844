//! Review-E as a service: decisions from the active policies, hot swap by folder
//! and by upload, and human review over real HTTP, on PostgreSQL with Review-E
//! connected as its own database role.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use bookkeeper_core::people::{Directory, Door, Person, Right};
use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{NewEvent, RecordedEvent, Store};
use review_e::policy::toolchain;
use review_e::{Config, ReviewE};
use serde_json::{json, Value};

const REVIEWER_OLA: &str = "ola-token-0123456789";
const REVIEWER_KARI: &str = "kari-token-0123456789";
const REVIEWER_PER: &str = "per-token-01234567890";
const AUTHOR: &str = "author-token-0123456789";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn built(dir: &Path, features: &[&str]) -> Vec<u8> {
    static LOCK: OnceLock<std::sync::Mutex<()>> = OnceLock::new();
    let _serial = LOCK.get_or_init(Default::default).lock().unwrap();
    toolchain::build(dir, features).unwrap()
}

fn small_receipts() -> Vec<u8> {
    built(&repo().join("policies/small-receipts"), &[])
}

fn infinite_loop() -> Vec<u8> {
    built(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile"), &["infinite-loop"])
}

struct App {
    db: TestDb,
    base: String,
    folder: PathBuf,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn spawn_review_e() -> Option<App> {
    let db = TestDb::postgres().await?;
    let folder = std::env::temp_dir().join(format!("review-e-policies-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&folder).unwrap();
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        policy_dir: Some(folder.clone()),
        people: Directory::new(vec![
            Person::new("ola").may_also(Right::Review).with_token(Door::ReviewE, REVIEWER_OLA),
            Person::new("kari").may_also(Right::Review).with_token(Door::ReviewE, REVIEWER_KARI),
            Person::new("per").may_also(Right::Review).with_token(Door::ReviewE, REVIEWER_PER),
            Person::new("finance-lead").may_also(Right::Publish).with_token(Door::ReviewE, AUTHOR),
        ])
        .unwrap(),
        poll_interval: Duration::from_millis(100),
        // Generous, so a busy test machine never times out a good policy.
        limits: review_e::policy::Limits { deadline: Duration::from_millis(500), ..Default::default() },
        ..Config::default()
    };
    // Review-E runs as its own role: the database decides what it may append.
    let store = Store::connect(&db.role_url("review_e")).await.unwrap();
    let service = ReviewE::build(config, store).await.unwrap();
    let base = format!("http://127.0.0.1:{}", service.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(service.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    Some(App { db, base, folder, http: reqwest::Client::new(), stop: Some(stop), task })
}

impl App {
    async fn propose(&self, id: &str, minor: i64, requester: &str) {
        let e = NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", id).with_payload(json!({
            "requested_by": requester,
            "receipt": {"sha256": "a".repeat(64), "filename": "r.jpg", "content_type": "image/jpeg"},
            "target": {"kind": "folio_event", "event_id": "evt-1"},
            "amount": {"minor": minor, "currency": "NOK"},
            "vendor": {"name": "Kiwi"}
        }));
        let book_e = Store::connect(&self.db.role_url("book_e")).await.unwrap();
        book_e.append_events(vec![e]).await.unwrap();
        book_e.close().await;
    }

    /// A history in which Kiwi was paid before, so it is a known vendor.
    async fn known_vendor(&self) {
        self.propose("history-1", 20_000, "user:ola").await;
        self.wait_for_decision("history-1").await;
        let executed = NewEvent::new("ReceiptAttachmentExecuted", "system", "EXECUTED", "history-1");
        let accounting = Store::connect(&self.db.role_url("accounting_api")).await.unwrap();
        accounting.append_events(vec![executed]).await.unwrap();
        accounting.close().await;
    }

    async fn wait_for_decision(&self, id: &str) -> RecordedEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let story = self.db.store.read_correlation(id).await.unwrap();
            if let Some(d) = story.iter().find(|e| e.actor == "system:auto") {
                return d.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "no decision for {id} within 20 s: {story:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn policies(&self) -> Vec<String> {
        let v: Value = self
            .http
            .get(format!("{}/policies", self.base))
            .bearer_auth(AUTHOR)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["policies"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect()
    }

    async fn wait_for_policies(&self, expected: &[&str]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while self.policies().await != expected {
            assert!(tokio::time::Instant::now() < deadline, "policies never became {expected:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(format!("{}{path}", self.base)).bearer_auth(token).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
        let _ = std::fs::remove_dir_all(&self.folder);
        self.db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_swap_by_folder_and_by_upload_without_a_restart() {
    let Some(app) = spawn_review_e().await else { return };
    app.known_vendor().await;

    // No policy: fail closed.
    app.propose("p1", 49_900, "user:ola").await;
    let d = app.wait_for_decision("p1").await;
    assert_eq!(d.event_type, "ReceiptAttachmentEscalated");
    assert!(d.reason().unwrap().contains("no enforcing policy"));

    // Drop a file into the watched folder: the next decision uses it.
    std::fs::write(app.folder.join("small-receipts.wasm"), small_receipts()).unwrap();
    app.wait_for_policies(&["small-receipts"]).await;
    app.propose("p2", 49_900, "user:ola").await;
    let d = app.wait_for_decision("p2").await;
    assert_eq!((d.event_type.as_str(), d.status.as_str()), ("ReceiptAttachmentApproved", "AUTO_APPROVED"));
    let record: review_e::decide::DecisionRecord = serde_json::from_value(d.metadata.clone()).unwrap();
    assert_eq!(record.verdicts[0].policy, "small-receipts");
    assert_eq!(record.facts.vendor_history.payments, 1, "the executed history counts");
    assert_eq!(record.policy_set.len(), 1);

    // A limits file beside the component asks for more memory: the policy is
    // republished under it, and the list shows the limits and the contract.
    std::fs::write(app.folder.join("small-receipts.limits.json"), r#"{"memory_mib": 20, "deadline_ms": 400}"#).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let list: serde_json::Value = app
            .http
            .get(format!("{}/policies", app.base))
            .bearer_auth(AUTHOR)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let policy = list["policies"][0].clone();
        if policy["limits"]["memory_bytes"] == 20 << 20 {
            break policy;
        }
        assert!(std::time::Instant::now() < deadline, "the limits file was not applied: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(listed["contract"], "0.2.0");
    assert_eq!(listed["limits"]["deadline_ms"], 400);
    let story = app.db.store.read_correlation("policy:small-receipts").await.unwrap();
    assert_eq!(story.last().unwrap().payload["limits"]["memory_bytes"], 20 << 20, "recorded in PolicyPublished");
    // A limits file asking for more than the maximum: refused, the policy stays.
    std::fs::write(app.folder.join("small-receipts.limits.json"), r#"{"memory_mib": 100000}"#).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let story_after = app.db.store.read_correlation("policy:small-receipts").await.unwrap();
    assert_eq!(story_after.len(), story.len(), "nothing published for limits above the maximum");
    std::fs::remove_file(app.folder.join("small-receipts.limits.json")).unwrap();

    // Upload a hostile policy over HTTP: its timeout escalates, naming it, and
    // Review-E keeps answering.
    let r = app
        .http
        .post(format!("{}/policies", app.base))
        .bearer_auth(AUTHOR)
        .header("content-type", "application/wasm")
        .body(infinite_loop())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    app.wait_for_policies(&["hostile-infinite-loop", "small-receipts"]).await;
    app.propose("p3", 49_900, "user:ola").await;
    let d = app.wait_for_decision("p3").await;
    assert_eq!(d.event_type, "ReceiptAttachmentEscalated");
    assert!(d.reason().unwrap().contains("hostile-infinite-loop") && d.reason().unwrap().contains("time limit"));
    assert_eq!(app.http.get(format!("{}/healthz", app.base)).send().await.unwrap().status(), 200);

    // The audit trail names who changed the rules.
    let story = app.db.store.read_correlation("policy:hostile-infinite-loop").await.unwrap();
    assert_eq!(story[0].actor, "user:finance-lead");

    // Retire it over HTTP; then remove the file: back to failing closed.
    let r = app
        .http
        .delete(format!("{}/policies/hostile-infinite-loop", app.base))
        .bearer_auth(AUTHOR)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    app.propose("p4", 49_900, "user:ola").await;
    assert_eq!(app.wait_for_decision("p4").await.event_type, "ReceiptAttachmentApproved");
    std::fs::remove_file(app.folder.join("small-receipts.wasm")).unwrap();
    app.wait_for_policies(&[]).await;
    app.propose("p5", 49_900, "user:ola").await;
    assert_eq!(app.wait_for_decision("p5").await.event_type, "ReceiptAttachmentEscalated");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_change_nothing() {
    let Some(app) = spawn_review_e().await else { return };
    let upload = |body: Vec<u8>, token: &'static str, content_type: &'static str| {
        let http = app.http.clone();
        let url = format!("{}/policies", app.base);
        async move {
            let r =
                http.post(url).bearer_auth(token).header("content-type", content_type).body(body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    let (status, body) = upload(b"not wasm at all".to_vec(), AUTHOR, "application/wasm").await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("magic bytes"), "{body}");
    let (status, _) = upload(small_receipts(), REVIEWER_OLA, "application/wasm").await;
    assert_eq!(status, 403, "a reviewer is not a policy author");
    let (status, _) = upload(small_receipts(), AUTHOR, "application/json").await;
    assert_eq!(status, 415);
    // Over the upload limit: 413, answered from the declared length, often before
    // the client has finished sending, so a busy machine may see the connection
    // closed under the body instead. Either way nothing is published (below).
    // Its own client: the server closes that connection, and a pooled client
    // could hand the closing connection to the next request.
    let big = reqwest::Client::new()
        .post(format!("{}/policies", app.base))
        .bearer_auth(AUTHOR)
        .header("content-type", "application/wasm")
        .body(vec![0u8; 26 * 1024 * 1024])
        .send()
        .await;
    match big {
        Ok(r) => assert_eq!(r.status(), 413, "over the upload limit"),
        Err(e) => assert!(e.is_request(), "over the upload limit: {e}"),
    }
    // Within the upload limit (the largest any policy may ask for) but over the
    // size this one runs under (the default, as it asks for nothing): refused.
    let (status, body) = upload(vec![0u8; 9 * 1024 * 1024], AUTHOR, "application/wasm").await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("the limit is 8388608 bytes"), "{body}");
    // Limits are asked for in the query; above the maximum, or misspelt: refused.
    let ask = |query: &'static str| {
        let http = app.http.clone();
        let base = app.base.clone();
        async move {
            let r = http
                .post(format!("{base}/policies?{query}"))
                .bearer_auth(AUTHOR)
                .header("content-type", "application/wasm")
                .body(small_receipts())
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) = ask("memory_mib=100000").await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("above this deployment's maximum"), "{body}");
    let (status, body) = ask("memory_mb=32").await;
    assert_eq!(status, 400, "a misspelt limit is not silently the default: {body}");
    let r = app.http.post(format!("{}/policies", app.base)).body(small_receipts()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(app.policies().await.is_empty(), "nothing was published");
    assert!(app.db.store.read_correlation("policy:small-receipts").await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_decide_what_no_policy_approved() {
    let Some(app) = spawn_review_e().await else { return };
    app.propose("big", 1_500_000, "user:ola").await;
    assert_eq!(app.wait_for_decision("big").await.event_type, "ReceiptAttachmentEscalated");

    let pending: Value = app
        .http
        .get(format!("{}/reviews/pending", app.base))
        .bearer_auth(REVIEWER_KARI)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending["pending"][0]["correlation_id"], "big");
    assert_eq!(pending["pending"][0]["escalated"], true);
    let detail: Value = app
        .http
        .get(format!("{}/reviews/big", app.base))
        .bearer_auth(REVIEWER_KARI)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["proposal"]["payload"]["amount"]["minor"], 1_500_000);
    assert!(detail["facts"]["today"].is_string());

    // The proposer may not approve their own proposal.
    let (status, body) = app.post("/reviews/big/approve", REVIEWER_OLA, json!({})).await;
    assert_eq!(status, 403, "{body}");

    // Two reviewers approving at once: exactly one wins, the other learns who did.
    let (a, b) = tokio::join!(
        app.post("/reviews/big/approve", REVIEWER_KARI, json!({"reason": "checked the receipt"})),
        app.post("/reviews/big/approve", REVIEWER_PER, json!({"reason": "looks right"})),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let winner = if a.0 == 200 { "user:kari" } else { "user:per" };
    let again = app.post("/reviews/big/approve", REVIEWER_KARI, json!({})).await;
    assert_eq!(again.0, 409);
    assert!(again.1["error"].as_str().unwrap().contains(&format!("by {winner}")), "{:?}", again.1);
    assert_eq!(again.1["code"], 409);
    // The singular route of earlier releases still answers the same, marked as
    // deprecated with its successor, and its clients still find `message`.
    let old = app
        .http
        .post(format!("{}/review/big/approve", app.base))
        .bearer_auth(REVIEWER_KARI)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 409);
    assert_eq!(old.headers()["deprecation"], "true");
    assert!(old.headers()["link"].to_str().unwrap().contains("</reviews/big/approve>"), "{:?}", old.headers());
    let old: Value = old.json().await.unwrap();
    assert!(old["message"].as_str().is_some_and(|m| m.contains(&format!("by {winner}"))), "{old}");
    let approvals =
        app.db.store.read_correlation("big").await.unwrap().iter().filter(|e| e.status == "APPROVED").count();
    assert_eq!(approvals, 1, "exactly one approval is recorded");

    // The same for two rejections at once (of a proposal already approved: the
    // emergency stop), which must not both land.
    let (a, b) = tokio::join!(
        app.post("/reviews/big/reject", REVIEWER_KARI, json!({"reason": "vendor account hacked"})),
        app.post("/reviews/big/reject", REVIEWER_PER, json!({"reason": "duplicate of last week"})),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");

    // Emergency stop: an approved proposal not yet executed can still be rejected.
    app.propose("stop-me", 1_500_000, "user:ola").await;
    app.wait_for_decision("stop-me").await;
    assert_eq!(app.post("/reviews/stop-me/approve", REVIEWER_KARI, json!({})).await.0, 200);
    let (status, _) =
        app.post("/reviews/stop-me/reject", REVIEWER_OLA, json!({"reason": "vendor account hacked"})).await;
    assert_eq!(status, 200);
    let story = app.db.store.read_correlation("stop-me").await.unwrap();
    let last = story.last().unwrap();
    assert_eq!(
        (last.event_type.as_str(), last.actor.as_str(), last.status.as_str()),
        ("ReceiptAttachmentRejected", "user:ola", "REJECTED")
    );

    // Once an execution attempt is claimed, it cannot be stopped (it may have reached
    // Fiken already); after a final failure it can be rejected again.
    app.propose("claimed", 1_500_000, "user:ola").await;
    app.wait_for_decision("claimed").await;
    assert_eq!(app.post("/reviews/claimed/approve", REVIEWER_KARI, json!({})).await.0, 200);
    let accounting = Store::connect(&app.db.role_url("accounting_api")).await.unwrap();
    accounting
        .append_events(vec![NewEvent::new("ReceiptAttachmentExecutionStarted", "system", "EXECUTING", "claimed")
            .with_payload(json!({"attempt": 1, "idempotency_key": "k"}))])
        .await
        .unwrap();
    let (status, body) = app.post("/reviews/claimed/reject", REVIEWER_OLA, json!({"reason": "stop"})).await;
    assert_eq!(status, 409);
    assert!(body.to_string().contains("being executed"), "{body}");
    accounting
        .append_events(vec![NewEvent::new("ReceiptAttachmentExecutionFailed", "system", "FAILED", "claimed")
            .with_payload(json!({"error": "Fiken down", "retryable": true, "attempt": 1, "final": true}))])
        .await
        .unwrap();
    assert_eq!(app.post("/reviews/claimed/reject", REVIEWER_OLA, json!({"reason": "give up"})).await.0, 200);

    // Once executed, it cannot be stopped; a reason is required; unknown ids are 404.
    app.propose("done", 1_500_000, "user:ola").await;
    app.wait_for_decision("done").await;
    assert_eq!(app.post("/reviews/done/approve", REVIEWER_KARI, json!({})).await.0, 200);
    accounting
        .append_events(vec![
            NewEvent::new("ReceiptAttachmentExecutionStarted", "system", "EXECUTING", "done")
                .with_payload(json!({"attempt": 1, "idempotency_key": "k"})),
            NewEvent::new("ReceiptAttachmentExecuted", "system", "EXECUTED", "done"),
        ])
        .await
        .unwrap();
    assert_eq!(app.post("/reviews/done/reject", REVIEWER_OLA, json!({"reason": "too late"})).await.0, 409);
    assert_eq!(app.post("/reviews/big/reject", REVIEWER_OLA, json!({})).await.0, 422);
    assert_eq!(app.post("/reviews/nope/approve", REVIEWER_OLA, json!({})).await.0, 404);
    assert_eq!(app.post("/reviews/big/approve", "wrong-token-0000000000", json!({})).await.0, 403);
    app.stop().await;
}

/// Two replicas whose operators set different defaults watch the same folder: the
/// first publishes, the second sees the same component with the same request
/// (none) and publishes nothing, and neither republishes to the other, ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_different_defaults_do_not_republish_to_each_other() {
    use review_e::policy::{Limits, PolicyEngine};
    use review_e::registry::Registry;
    let db = TestDb::new(bookkeeper_core::testing::Backend::Sqlite).await.unwrap();
    let folder = std::env::temp_dir().join(format!("bk-folder-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("small-receipts.wasm"), small_receipts()).unwrap();
    let tight = Registry::new(PolicyEngine::new(Limits::default()).unwrap());
    let roomy =
        Registry::new(PolicyEngine::new(Limits { deadline: Duration::from_millis(40), ..Limits::default() }).unwrap());
    let published = || async { db.store.read_correlation("policy:small-receipts").await.unwrap().len() };
    for _ in 0..3 {
        for registry in [&tight, &roomy] {
            review_e::folder::rescan(&folder, &db.store, registry, &mut Default::default()).await.unwrap();
        }
    }
    assert_eq!(published().await, 1, "one publication, whichever replica's defaults");
    // A limits file is a change of the request: published once more, then quiet.
    std::fs::write(folder.join("small-receipts.limits.json"), r#"{"deadline_ms": 30}"#).unwrap();
    for _ in 0..3 {
        for registry in [&tight, &roomy] {
            review_e::folder::rescan(&folder, &db.store, registry, &mut Default::default()).await.unwrap();
        }
    }
    assert_eq!(published().await, 2);
    let story = db.store.read_correlation("policy:small-receipts").await.unwrap();
    assert_eq!(story[1].payload["asked"]["deadline_ms"], 30);
    assert_eq!(story[1].payload["limits"]["deadline_ms"], 30);
    let _ = std::fs::remove_dir_all(&folder);
    db.cleanup().await;
}
