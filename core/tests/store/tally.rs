//! The kept tally behind `stats`, `/metrics` and the pending list, on both
//! backends: on random histories it equals the views over the whole log, call
//! after call, and a new process resumes from the saved one.

use bookkeeper_core::store::{PendingReview, Stats};
use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{NewEvent, Store};
use serde_json::json;

crate::on_both_backends!(the_tally_equals_the_views_on_random_histories_and_resumes_in_a_new_process);

/// What the two must agree on (subscriptions are read the same way by both).
fn comparable(s: &Stats) -> String {
    let parked: Vec<_> = s.parked.iter().map(|p| (&p.subscription, p.count, p.last_position)).collect();
    format!(
        "events {} by {:?}; pending {} escalated {}; approved {} auto {} rejected {} rate {:?}; parked {:?}",
        s.events,
        s.by_type_and_status,
        s.pending_reviews,
        s.escalated_pending,
        s.approved,
        s.auto_approved,
        s.rejected,
        s.approval_rate,
        parked
    )
}

fn listed(p: &[PendingReview]) -> Vec<(String, bool)> {
    p.iter().map(|r| (r.correlation_id.clone(), r.escalated)).collect()
}

async fn agree(store: &Store, seed: u64, when: &str) {
    let kept = store.stats().await.unwrap();
    let scan = store.stats_by_scan().await.unwrap();
    assert_eq!(comparable(&kept), comparable(&scan), "{when} (seed {seed}, TALLY_SEED={seed} repeats it)");
    let kept = store.pending_reviews().await.unwrap();
    let scan = store.pending_reviews_by_scan().await.unwrap();
    assert_eq!(listed(&kept), listed(&scan), "{when}: pending list (seed {seed})");
}

/// A random event: a proposal, or for an earlier action a decision (naming its
/// proposal in the payload, by causation, or naming something else), an
/// escalation, an execution, a park record, or something no view counts.
fn random_event(rng: &mut fastrand::Rng, n: usize, proposals: &[(String, uuid::Uuid)]) -> NewEvent {
    let kind = if rng.bool() { "ReceiptAttachment" } else { "InvoiceRegistration" };
    if proposals.is_empty() || rng.u8(0..10) < 3 {
        return NewEvent::new(format!("{kind}Proposed"), "book-e", "PROPOSED", format!("a{n}"))
            .with_payload(json!({"amount": {"minor": 100, "currency": "NOK"}}));
    }
    let (corr, proposal) = proposals[rng.usize(0..proposals.len())].clone();
    let named = |e: NewEvent, rng: &mut fastrand::Rng| match rng.u8(0..10) {
        0 => e.with_payload(json!({"reason": "r", "proposal_event_id": uuid::Uuid::new_v4()})),
        1 => e.with_payload(json!({"reason": "r"})).caused_by(proposal),
        _ => e.with_payload(json!({"reason": "r", "proposal_event_id": proposal})),
    };
    match rng.u8(0..12) {
        0..=2 => named(NewEvent::new(format!("{kind}Approved"), "system:auto", "AUTO_APPROVED", &corr), rng),
        3 => named(NewEvent::new(format!("{kind}Approved"), "user:kari", "APPROVED", &corr), rng),
        4 | 5 => named(NewEvent::new(format!("{kind}Rejected"), "user:kari", "REJECTED", &corr), rng),
        6 | 7 => NewEvent::new(format!("{kind}Escalated"), "system:auto", "ESCALATED", &corr)
            .with_payload(json!({"reason": "r", "proposal_event_id": proposal})),
        8 => NewEvent::new(format!("{kind}Executed"), "system", "EXECUTED", &corr),
        9 => {
            let subscription = ["review-e.proposals", "accounting-api.approvals"][rng.usize(0..2)];
            NewEvent::new("SubscriptionEventParked", "review-e", "PARKED", &corr)
                .with_payload(json!({"subscription": subscription, "position": n, "reason": "poison"}))
        }
        10 => NewEvent::new(format!("{kind}Approved"), "system:auto", "AUTO_APPROVED", format!("ghost{n}"))
            .with_payload(json!({"reason": "r", "proposal_event_id": proposal})),
        _ => NewEvent::new("SomethingElse", "cron", "DONE", &corr),
    }
}

async fn the_tally_equals_the_views_on_random_histories_and_resumes_in_a_new_process(db: &TestDb) {
    let seed = std::env::var("TALLY_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let store = &db.store;
    agree(store, seed, "an empty log").await;
    let mut proposals = Vec::new();
    let mut n = 0;
    for round in 0..10 {
        for _ in 0..rng.usize(1..5) {
            let batch: Vec<NewEvent> = (0..rng.usize(1..6))
                .map(|_| {
                    n += 1;
                    random_event(&mut rng, n, &proposals)
                })
                .collect();
            for e in &batch {
                if e.event_type.ends_with("Proposed") {
                    proposals.push((e.correlation_id.clone(), e.event_id));
                }
            }
            store.append_events(batch).await.unwrap();
        }
        agree(store, seed, &format!("round {round}")).await;
    }
    // Whatever the seed drew, every kind of count is exercised once more.
    let (a, r) = (
        NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", "fixed-a"),
        NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", "fixed-r"),
    );
    store
        .append_events(vec![
            a.clone(),
            r.clone(),
            NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", "fixed-p"),
            NewEvent::new("ReceiptAttachmentApproved", "system:auto", "AUTO_APPROVED", "fixed-a")
                .with_payload(json!({"reason": "r", "proposal_event_id": a.event_id})),
            NewEvent::new("InvoiceRegistrationRejected", "user:kari", "REJECTED", "fixed-r")
                .with_payload(json!({"reason": "r", "proposal_event_id": r.event_id})),
            NewEvent::new("SubscriptionEventParked", "review-e", "PARKED", "fixed-p")
                .with_payload(json!({"subscription": "review-e.proposals", "position": 1, "reason": "poison"})),
        ])
        .await
        .unwrap();
    agree(store, seed, "the fixed history").await;
    let kept = store.stats().await.unwrap();
    assert!(kept.approved > 0 && kept.rejected > 0 && kept.pending_reviews > 0, "a rich history (seed {seed})");
    assert!(!kept.parked.is_empty(), "seed {seed}");

    // Another process: it starts from the saved tally and goes on from there.
    let other = Store::connect(&db.url).await.unwrap();
    let (saved_at, _) = other.load_read_model("store.tally").await.unwrap().expect("the tally is saved");
    assert!(saved_at > bookkeeper_core::Cursor::START);
    other.append_events(vec![random_event(&mut rng, n + 1, &proposals)]).await.unwrap();
    agree(&other, seed, "a new process").await;
    other.close().await;
}
