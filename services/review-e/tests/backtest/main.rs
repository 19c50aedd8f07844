//! `replay` and `verify` over a recorded history, on both backends.

use std::path::Path;

use bookkeeper_core::testing::{Backend, TestDb};
use bookkeeper_core::NewEvent;
use bookkeeper_policy_sdk::Outcome;
use review_e::backtest;
use review_e::policy::{toolchain, Limits, Mode, PolicyEngine};
use review_e::publish::publish;
use review_e::registry::Registry;
use serde_json::json;

fn receipt(id: &str, minor: i64, vendor: &str) -> NewEvent {
    NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", id).with_payload(json!({
        "requested_by": "user:ola",
        "receipt": {"sha256": "c".repeat(64), "filename": "r.pdf", "content_type": "application/pdf"},
        "amount": {"minor": minor, "currency": "NOK"}, "vendor": {"name": vendor}
    }))
}

async fn recorded_history_replays_and_verifies(db: &TestDb) {
    let store = &db.store;
    let engine =
        PolicyEngine::new(Limits { deadline: std::time::Duration::from_secs(2), ..Limits::default() }).unwrap();
    let registry = Registry::new(engine.clone());
    let small =
        toolchain::build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/small-receipts"), &[]).unwrap();
    let digest = PolicyEngine::digest(&small);
    let published =
        publish(store, &registry, small, Mode::Enforcing, Default::default(), "user:finance-lead", "upload")
            .await
            .unwrap();
    // The publication records the limits granted and the contract it speaks...
    assert_eq!(published.contract.as_deref(), Some("0.2.0"));
    assert_eq!(published.limits.map(review_e::policy::Limits::from), Some(*engine.defaults()));
    // ...and its compilation is cached for a restart or another replica, which
    // load it from there (a damaged cache entry only means compiling again).
    assert!(store.compiled_policy(&digest, engine.fingerprint()).await.unwrap().is_some());
    // A compilation nothing in force needs any more (a retired component's).
    let retired = "0".repeat(64);
    store.save_compiled_policy(&retired, engine.fingerprint(), b"retired").await.unwrap();
    let replica = Registry::new(PolicyEngine::new(*engine.defaults()).unwrap());
    replica.catch_up(store).await.unwrap();
    assert_eq!(replica.current().set.len(), 1);
    store.save_compiled_policy(&digest, engine.fingerprint(), b"damaged").await.unwrap();
    let another = Registry::new(PolicyEngine::new(*engine.defaults()).unwrap());
    another.catch_up(store).await.unwrap();
    assert_eq!(another.current().set.len(), 1, "a damaged cache entry is compiled around, not trusted");
    assert!(another.current().unloaded.is_empty());
    // Pruning throws away what no policy in force needs, and keeps what is.
    let pruned = registry.prune_compile_cache(store, std::time::Duration::ZERO).await.unwrap();
    assert_eq!(pruned.rows, 1, "{pruned:?}");
    assert_eq!(store.compiled_policy(&retired, engine.fingerprint()).await.unwrap(), None);
    assert!(store.compiled_policy(&digest, engine.fingerprint()).await.unwrap().is_some());

    let mut reviewer = review_e::decide::subscription(store.clone(), registry.clone(), Default::default());
    store.append_events(vec![receipt("history", 20_000, "Kiwi")]).await.unwrap();
    reviewer.drain().await.unwrap();
    store
        .append_events(vec![NewEvent::new("ReceiptAttachmentExecuted", "system", "EXECUTED", "history")])
        .await
        .unwrap();
    store
        .append_events(vec![
            receipt("r1", 49_900, "Kiwi"),
            receipt("r2", 150_000, "Kiwi"),
            receipt("r3", 10_000, "Ny Kafé"),
        ])
        .await
        .unwrap();
    // The three proposals, and the execution the facts fold.
    assert_eq!(reviewer.drain().await.unwrap(), 4);

    let history = backtest::history(store, None).await.unwrap();
    let outcomes: Vec<_> = history.iter().map(|r| (r.proposal.correlation_id.as_str(), r.outcome())).collect();
    assert_eq!(
        outcomes,
        [
            ("history", Outcome::Escalate),
            ("r1", Outcome::Approve),
            ("r2", Outcome::Escalate),
            ("r3", Outcome::Escalate)
        ]
    );

    // Every automatic decision re-runs identically.
    let verified = backtest::verify(store, &engine, |_, _| {}).await.unwrap();
    assert_eq!(verified.checked, 4);
    assert!(verified.mismatches.is_empty(), "{:?}", verified.mismatches);

    // A candidate that faults would have escalated the one approval.
    let panics = toolchain::build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile"), &["panic"]).unwrap();
    let candidate = engine.load(&panics).unwrap();
    let mut calls = 0;
    let replay = backtest::replay(store, &engine, &candidate, None, |_, _| calls += 1).await.unwrap();
    assert_eq!(replay.replayed, 4);
    assert_eq!(replay.changes.len(), 1);
    assert_eq!(replay.changes[0].correlation_id, "r1");
    assert_eq!((replay.changes[0].recorded, replay.changes[0].candidate), (Outcome::Approve, Outcome::Escalate));
    assert!(calls >= 4, "progress is reported");
    let tomorrow = chrono::Utc::now().date_naive().succ_opt().unwrap();
    assert_eq!(backtest::replay(store, &engine, &candidate, Some(tomorrow), |_, _| {}).await.unwrap().replayed, 0);

    // A decision whose record does not match what its policy decides is reported.
    let forged_record = history[2].record.clone(); // r2: small-receipts escalated it
    let mut forged_record = forged_record;
    forged_record.verdicts[0].outcome = Outcome::Approve;
    forged_record.verdicts[0].reason = "looks fine".into();
    let r4 = receipt("r4", 150_000, "Kiwi");
    forged_record.proposal_event_id = r4.event_id;
    store.append_events(vec![r4.clone()]).await.unwrap();
    let forged = NewEvent::new("ReceiptAttachmentApproved", "system:auto", "AUTO_APPROVED", "r4")
        .with_payload(json!({"reason": "small-receipts: looks fine"}))
        .caused_by(r4.event_id)
        .with_metadata(serde_json::to_value(&forged_record).unwrap());
    store.append_events(vec![forged]).await.unwrap();
    let verified = backtest::verify(store, &engine, |_, _| {}).await.unwrap();
    assert_eq!(verified.checked, 5);
    assert!(verified.mismatches.iter().all(|m| m.correlation_id == "r4"), "{:?}", verified.mismatches);
    assert!(
        verified.mismatches.iter().any(|m| m.detail.contains("recorded approve (looks fine)")),
        "{:?}",
        verified.mismatches
    );

    // A decision recorded before `weekday` existed: a candidate built against
    // 0.2.0 is given none there, and the replay says so for that decision only.
    let mut old_record = history[1].record.clone(); // r1, approved
    old_record.facts.weekday = None;
    let r5 = receipt("r5", 49_900, "Kiwi");
    old_record.proposal_event_id = r5.event_id;
    store.append_events(vec![r5.clone()]).await.unwrap();
    let mut old_metadata = serde_json::to_value(&old_record).unwrap();
    assert!(old_metadata["facts"].get("weekday").is_none(), "recorded as a 0.1.0 decision was");
    old_metadata["facts"].as_object_mut().unwrap().remove("weekday");
    let old_decision = NewEvent::new("ReceiptAttachmentApproved", "system:auto", "AUTO_APPROVED", "r5")
        .with_payload(json!({"reason": "small-receipts: from before 0.2.0"}))
        .caused_by(r5.event_id)
        .with_metadata(old_metadata);
    store.append_events(vec![old_decision]).await.unwrap();
    let tells =
        toolchain::build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile"), &["tells-facts"]).unwrap();
    let candidate = engine.load(&tells).unwrap();
    let replay = backtest::replay(store, &engine, &candidate, None, |_, _| {}).await.unwrap();
    assert_eq!(replay.lacking, vec![("r5".to_string(), vec!["weekday"])], "only the old record lacks it");
    assert!(history.iter().all(|r| r.record.facts.weekday.is_some()), "today's records carry the weekday");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    recorded_history_replays_and_verifies(&db).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    recorded_history_replays_and_verifies(&db).await;
    db.cleanup().await;
}

/// A queue of proposals (and executions between them) is judged as one batch:
/// every decision commits in one transaction, and each was made on exactly the
/// facts it would have had alone, as the scan over the log defines them.
async fn a_queue_is_judged_in_one_batch_on_the_facts_each_would_have_alone(db: &TestDb, backend: Backend) {
    let store = &db.store;
    let registry = Registry::new(PolicyEngine::new(Limits::default()).unwrap());
    let mut reviewer = review_e::decide::subscription(store.clone(), registry, Default::default());
    let mut queue = Vec::new();
    for i in 0..30 {
        let mut p = receipt(&format!("q{i}"), 10_000 + i * 100, if i % 3 == 0 { "Rema" } else { "Kiwi" });
        p.payload["invoice_number"] = json!(format!("F-{}", i % 4));
        queue.push(p);
        if i % 2 == 1 {
            queue.push(NewEvent::new("ReceiptAttachmentExecuted", "system", "EXECUTED", format!("q{}", i - 1)));
        }
    }
    store.append_events(queue).await.unwrap();
    assert_eq!(reviewer.drain().await.unwrap(), 45);
    let mut transactions = std::collections::BTreeSet::new();
    for i in 0..30 {
        let story = store.read_correlation(&format!("q{i}")).await.unwrap();
        let decision = story.iter().find(|e| e.event_type == "ReceiptAttachmentEscalated").expect("decided");
        transactions.insert(decision.transaction_id);
        let proposal = review_e::proposal::from_event(&story[0]);
        let query = review_e::proposal::query_for(&story[0], &proposal);
        let alone = review_e::proposal::to_policy_facts(store.proposal_facts_by_scan(&query).await.unwrap(), &query);
        assert_eq!(decision.metadata["facts"], serde_json::to_value(&alone).unwrap(), "q{i}");
    }
    if backend == Backend::Postgres {
        assert_eq!(transactions.len(), 1, "one commit for the whole queue");
    }
    // The facts read model went on from there: the next proposal alone agrees too.
    store.append_events(vec![receipt("after", 5_000, "Kiwi")]).await.unwrap();
    assert_eq!(reviewer.drain().await.unwrap(), 1);
    let story = store.read_correlation("after").await.unwrap();
    let p = review_e::proposal::from_event(&story[0]);
    let q = review_e::proposal::query_for(&story[0], &p);
    let alone = review_e::proposal::to_policy_facts(store.proposal_facts_by_scan(&q).await.unwrap(), &q);
    assert_eq!(story[1].metadata["facts"], serde_json::to_value(&alone).unwrap());
    assert_eq!(alone.vendor_history.payments, 10, "the executed Kiwi receipts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_on_sqlite() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    a_queue_is_judged_in_one_batch_on_the_facts_each_would_have_alone(&db, Backend::Sqlite).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_on_postgres() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    a_queue_is_judged_in_one_batch_on_the_facts_each_would_have_alone(&db, Backend::Postgres).await;
    db.cleanup().await;
}

/// A restart loads what is in force, not every version the log ever held: a
/// publication a later one replaced or retired is never compiled again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_loads_only_the_policies_in_force() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let store = &db.store;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let small = toolchain::build(&root.join("small-receipts"), &[]).unwrap();
    let budget = toolchain::build(&root.join("monthly-budget"), &[]).unwrap();
    let (small_digest, budget_digest) = (PolicyEngine::digest(&small), PolicyEngine::digest(&budget));
    let registry = Registry::new(PolicyEngine::new(Limits::default()).unwrap());
    for (bytes, mode) in [(small, Mode::Shadow), (budget, Mode::Enforcing)] {
        publish(store, &registry, bytes, mode, Default::default(), "user:finance-lead", "upload").await.unwrap();
    }
    review_e::publish::retire(store, &registry, "small-receipts", "user:finance-lead", "upload", "replaced")
        .await
        .unwrap();
    let engine = PolicyEngine::new(Limits::default()).unwrap();
    let restarted = Registry::new(engine.clone());
    restarted.catch_up(store).await.unwrap();
    assert_eq!(restarted.current().set.len(), 1);
    assert!(engine.has_compiled(&budget_digest), "the policy in force is loaded");
    assert!(!engine.has_compiled(&small_digest), "a retired one is not even compiled");
    db.cleanup().await;
}
