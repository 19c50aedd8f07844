//! A randomized run of every service role, hostile ones included (within each
//! role's database rights), interleaved with the real Review-E and Accounting API
//! on PostgreSQL, then the invariants checked on the log and at the fake Fiken:
//!
//! - nothing is executed without Review-E's approval of that exact proposal (an
//!   automatic decision that names it, or a person who did not ask for it);
//! - no self-approval;
//! - every proposal is decided by Review-E exactly once, or parked with a reason;
//! - what is executed is executed once, and is what was approved.
//!
//! `BOOKKEEPER_TRUST_SEED` replays a run; `BOOKKEEPER_TRUST_STEPS` makes it longer.

// Amounts are written kroner_øre: 250_00 is 250,00 kr.
#![allow(clippy::inconsistent_digit_grouping)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bookkeeper_core::domain::Stage;
use bookkeeper_core::lifecycle::{stage, Verdict};
use bookkeeper_core::people::{Directory, Door, Person, Right};
use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{ActionState, Append, Cursor, NewEvent, Phase, RecordedEvent, Store, TypeFilter};
use serde_json::json;
use uuid::Uuid;

const PEOPLE: [&str; 3] = ["ola", "kari", "per"];

fn env_number(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn invoice(cid: &str, number: &str, minor: i64, requester: &str, sha: &str) -> NewEvent {
    NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", cid).with_payload(json!({
        "requested_by": format!("user:{requester}"),
        "document": {"sha256": sha, "filename": "invoice.pdf", "content_type": "application/pdf"},
        "vendor": {"name": "Strøm AS", "organization_number": "998877665"},
        "invoice_number": number, "amount": {"minor": minor, "currency": "NOK"},
        "invoice_date": "2026-11-01", "due_date": "2026-11-30", "account": "6340",
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_roles_interleaved_with_the_services_never_break_the_invariants() {
    let Some(db) = TestDb::postgres().await else { return };
    let seed = env_number("BOOKKEEPER_TRUST_SEED", fastrand::u64(..));
    let steps = env_number("BOOKKEEPER_TRUST_STEPS", 150);
    eprintln!("trust_random: seed {seed}, {steps} steps (BOOKKEEPER_TRUST_SEED={seed} replays it)");
    let mut rng = fastrand::Rng::with_seed(seed);

    // The policy: duplicate-invoice only, so new invoices are approved automatically
    // and repeated invoice numbers rejected.
    let folder = std::env::temp_dir().join(format!("trust-random-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&folder).unwrap();
    common::build_policy("duplicate-invoice", &folder.join("duplicate-invoice.wasm"));

    let people = Directory::new(
        PEOPLE
            .iter()
            .map(|p| {
                Person::new(*p)
                    .may_also(Right::Review)
                    .with_token(Door::ReviewE, &format!("{p}-review-token-0123456789"))
            })
            .collect(),
    )
    .unwrap();
    let accounting = accounting_api::AccountingApi::build(
        accounting_api::Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            poll_interval: Duration::from_millis(50),
            fiken_spacing: Duration::ZERO,
            ..Default::default()
        },
        Store::connect(&db.role_url("accounting_api")).await.unwrap(),
    )
    .await
    .unwrap();
    let fiken = accounting.sandbox().fiken.clone().unwrap();
    tokio::spawn(accounting.run_until_stopped(std::future::pending()));
    let review = review_e::ReviewE::build(
        review_e::Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            policy_dir: Some(folder),
            people: people.clone(),
            poll_interval: Duration::from_millis(50),
            limits: review_e::policy::Limits { deadline: Duration::from_millis(500), ..Default::default() },
            ..Default::default()
        },
        Store::connect(&db.role_url("review_e")).await.unwrap(),
    )
    .await
    .unwrap();
    let registry = review.registry().clone();
    tokio::spawn(review.run_until_stopped(std::future::pending()));
    let started = Instant::now();
    while registry.current().set.is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "the policy never came into force");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let role = |r: &str| {
        let url = db.role_url(r);
        async move { Store::connect(&url).await.unwrap() }
    };
    let (book_e, review_e, accounting_role, cron) =
        (role("book_e").await, role("review_e").await, role("accounting_api").await, role("cron").await);
    let sha = db.store.put_blob(b"%PDF-1.7 invoice", "application/pdf").await.unwrap();
    let mut proposed: Vec<(String, Uuid, String)> = Vec::new(); // cid, proposal id, requester
    let mut refused = 0;
    for step in 0..steps {
        let pick = |rng: &mut fastrand::Rng, v: &[(String, Uuid, String)]| v.get(rng.usize(..v.len().max(1))).cloned();
        match rng.u8(..10) {
            // Book-E, honest: a new invoice (a few numbers repeat: duplicates).
            0..=3 => {
                let cid = format!("a-{step}");
                let requester = PEOPLE[rng.usize(..PEOPLE.len())];
                let number = format!("F-{}", rng.u32(..steps as u32 * 2 / 3 + 1));
                let p = invoice(&cid, &number, rng.i64(100_00..50_000_00), requester, &sha);
                let id = p.event_id;
                book_e.append(Append::one(p)).await.unwrap();
                proposed.push((cid, id, requester.to_string()));
            }
            // Book-E, hostile: a second, larger proposal for an existing action.
            4 => {
                if let Some((cid, _, requester)) = pick(&mut rng, &proposed) {
                    let p = invoice(&cid, &format!("X-{step}"), 999_999_00, &requester, &sha);
                    assert!(book_e.append(Append::one(p)).await.is_err(), "a second proposal was stored");
                    refused += 1;
                }
            }
            // Review-E's role, hostile: decisions naming no proposal or another
            // one, and a requester "approving" their own.
            5 => {
                if let Some((cid, id, requester)) = pick(&mut rng, &proposed) {
                    let other = proposed[rng.usize(..proposed.len())].1;
                    let named = [json!(null), json!(Uuid::new_v4()), json!(other)][rng.usize(..3)].clone();
                    let forged = NewEvent::new("InvoiceRegistrationApproved", "system:auto", "AUTO_APPROVED", &cid)
                        .with_payload(json!({"reason": "forged", "proposal_event_id": named}));
                    let own =
                        NewEvent::new("InvoiceRegistrationApproved", format!("user:{requester}"), "APPROVED", &cid)
                            .with_payload(json!({"reason": "mine", "proposal_event_id": id}));
                    let event = if other == id || rng.bool() { own } else { forged };
                    review_e.append(Append::one(event)).await.unwrap();
                }
            }
            // The Accounting API's role, hostile: outcomes with no claim, claims with no approval.
            // (An outcome after a claim is the executor's own word, which the trust model
            // cannot take from a compromised executor: the run keeps to what it must refuse.)
            6 => {
                if let Some((cid, _, _)) = pick(&mut rng, &proposed) {
                    let t = ["InvoiceRegistrationExecuted", "InvoiceRegistrationExecutionStarted"][rng.usize(..2)];
                    let status = if t.ends_with("Executed") { "EXECUTED" } else { "EXECUTING" };
                    let story = db.store.read_correlation(&cid).await.unwrap();
                    let claimed = story.iter().any(|e| e.event_type.ends_with("ExecutionStarted"));
                    if !(claimed && t.ends_with("Executed")) {
                        let _ = accounting_role.append(Append::one(NewEvent::new(t, "system", status, &cid))).await;
                    }
                }
            }
            // The CronJob's role: its own event in an action's story; a look-alike is refused.
            7 => {
                if let Some((cid, _, _)) = pick(&mut rng, &proposed) {
                    cron.append(Append::one(NewEvent::new("ComplianceCheckCompleted", "cron", "COMPLETED", &cid)))
                        .await
                        .unwrap();
                    let look_alike = NewEvent::new("ComplianceCheckApproved", "cron", "COMPLETED", &cid);
                    assert!(cron.append(Append::one(look_alike)).await.is_err());
                }
            }
            // People deciding through Review-E's code: anyone, the requester included.
            _ => {
                if let Some((cid, _, _)) = pick(&mut rng, &proposed) {
                    let reviewer = PEOPLE[rng.usize(..PEOPLE.len())];
                    let _ = if rng.u8(..4) == 0 {
                        review_e::review::reject(&db.store, &cid, reviewer, "no", None).await
                    } else {
                        review_e::review::approve(&db.store, &people, &cid, reviewer, None, None).await
                    };
                }
            }
        }
        if rng.u8(..8) == 0 {
            tokio::time::sleep(Duration::from_millis(rng.u64(1..30))).await;
        }
    }

    // Quiet: every action decided, and nothing approved left unexecuted.
    let started = Instant::now();
    let settled = |story: &[RecordedEvent]| {
        let s = ActionState::fold(story);
        !matches!(s.phase(), Phase::AwaitingDecision | Phase::Approved | Phase::Executing)
    };
    loop {
        let mut open = Vec::new();
        for (cid, _, _) in &proposed {
            if !settled(&db.store.read_correlation(cid).await.unwrap()) {
                open.push(cid.clone());
            }
        }
        if open.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "seed {seed}: still open: {open:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The invariants.
    // Invoice number -> actions executed with it (a person may approve a duplicate
    // on purpose: two actions, each registered once).
    let mut executed_numbers: BTreeMap<String, usize> = BTreeMap::new();
    for (cid, proposal_id, requester) in &proposed {
        let story = db.store.read_correlation(cid).await.unwrap();
        let state = ActionState::fold(&story);
        assert_eq!(state.proposals.len(), 1, "seed {seed}: {cid} has {} proposals", state.proposals.len());
        assert_eq!(state.proposals[0].event_id, *proposal_id);
        // Decided by Review-E exactly once (its automatic decision), or parked.
        let automatic: Vec<&RecordedEvent> = story
            .iter()
            .filter(|e| {
                matches!(stage(&e.event_type), Some(Stage::Approved | Stage::Rejected | Stage::Escalated))
                    && e.metadata.get("proposal_event_id").is_some()
            })
            .collect();
        let parked = story.iter().any(|e| e.event_type == "SubscriptionEventParked" && e.reason().is_some());
        assert!(
            automatic.len() == 1 || parked || state.decision.as_ref().is_some_and(|d| d.by_person),
            "seed {seed}: {cid} decided automatically {} times",
            automatic.len()
        );
        if let Some(d) = &state.decision {
            assert_eq!(d.proposal.event_id, *proposal_id, "seed {seed}: {cid}'s decision is not about its proposal");
            if d.by_person && d.verdict == Verdict::Approved {
                assert!(
                    !people.same_person(&d.event.actor, &format!("user:{requester}")),
                    "seed {seed}: {cid} self-approved"
                );
            }
        }
        if state.phase() == Phase::Executed {
            let approval = state.approval().expect("executed under an approval");
            assert!(
                approval.by_person || approval.event.metadata.get("proposal_event_id") == Some(&json!(proposal_id))
            );
            let number = approval.proposal.payload["invoice_number"].as_str().unwrap().to_string();
            *executed_numbers.entry(number).or_default() += 1;
        }
    }
    // Each executed action registered exactly once, and exactly what was approved.
    let mut at_fiken: BTreeMap<String, usize> = BTreeMap::new();
    for (_, number) in fiken.purchases() {
        *at_fiken.entry(number.unwrap_or_default()).or_default() += 1;
    }
    assert_eq!(at_fiken, executed_numbers, "seed {seed}: Fiken holds other purchases than the executed actions");
    assert!(at_fiken.keys().all(|n| !n.starts_with("X-")), "seed {seed}: a slipped-in proposal was registered");
    let all = db.store.read_waiting(Cursor::START, &TypeFilter::all(), 100_000, Duration::from_secs(5)).await.unwrap();
    eprintln!(
        "trust_random: {} proposals, {} refused second proposals, {} registered, {} events",
        proposed.len(),
        refused,
        at_fiken.values().sum::<usize>(),
        all.events.len()
    );
    db.cleanup().await;
}
