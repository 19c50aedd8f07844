//! The facts read model on both backends: on random histories, the facts kept
//! beside the checkpoint equal the scan over the log that defines them and a fold
//! from scratch, through rebuilds; a rebuild folds again only under the lease.

use std::sync::{Arc, Mutex};

use bookkeeper_core::store::facts::FactsModel;
use bookkeeper_core::store::{FactsQuery, ProposalFacts};
use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{
    Append, Handler, HandlerError, NewEvent, RecordedEvent, Store, StoreError, Subscription, SubscriptionOptions,
};
use serde_json::{json, Value};

crate::on_both_backends!(
    kept_facts_equal_the_scan_and_a_fold_from_scratch_on_random_histories,
    a_rebuild_is_folded_again_only_by_the_lease_holder
);

const NAME: &str = "review-e.proposals";

/// The query Review-E makes for a proposal event (the same mapping as its
/// `proposal::facts_for`).
fn query_of(event: &RecordedEvent) -> FactsQuery {
    let p = &event.payload;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    FactsQuery {
        before: event.cursor(),
        correlation_id: event.correlation_id.clone(),
        vendor_name: text(p.pointer("/vendor/name")),
        vendor_org: text(p.pointer("/vendor/organization_number")),
        account: text(p.get("account")),
        invoice_number: text(p.get("invoice_number")),
        requested_by: text(p.get("requested_by")).filter(|r| !r.is_empty()),
        today: event.created_at.date_naive(),
    }
}

/// A handler that, for every proposal, compares the kept facts with the scan and
/// with its own fold from scratch.
struct Checker {
    store: Store,
    model: Mutex<FactsModel>,
    seen: Mutex<Vec<(String, ProposalFacts)>>,
    mismatches: Mutex<Vec<String>>,
    batches: std::sync::atomic::AtomicUsize,
}

#[derive(Clone)]
struct Checking(Arc<Checker>);

impl Handler for Checking {
    async fn handle(&self, event: &RecordedEvent) -> Result<Append, HandlerError> {
        let this = &self.0;
        if event.event_type.ends_with("Proposed") {
            let q = query_of(event);
            let kept = this.store.proposal_facts(&q, NAME).await?;
            let scan = this.store.proposal_facts_by_scan(&q).await?;
            let model = this.model.lock().unwrap().facts(&q);
            if kept != scan || kept != model {
                this.mismatches.lock().unwrap().push(format!(
                    "{} ({}): kept {kept:?}, scan {scan:?}, fold from scratch {model:?}",
                    event.correlation_id, event.payload
                ));
            }
            this.seen.lock().unwrap().push((event.correlation_id.clone(), kept));
        }
        // The same event may come again after a failed commit: the fold counts it once.
        this.model.lock().unwrap().fold(event);
        Ok(Append::nothing())
    }

    /// A queue: every proposal's facts from the batch path (the kept tables and
    /// the batch's earlier events) against the scan and the fold from scratch.
    async fn handle_batch(&self, events: &[RecordedEvent]) -> Option<Result<Vec<Append>, HandlerError>> {
        let this = &self.0;
        let queries: Vec<Option<FactsQuery>> =
            events.iter().map(|e| e.event_type.ends_with("Proposed").then(|| query_of(e))).collect();
        let kept = match this.store.proposal_facts_in_batch(NAME, events, &queries).await {
            Ok(kept) => kept,
            Err(e) => return Some(Err(e.into())),
        };
        let mut model = this.model.lock().unwrap().clone();
        let mut seen = Vec::new();
        for (i, event) in events.iter().enumerate() {
            if let (Some(q), Some(Some(kept))) = (&queries[i], kept.get(i)) {
                let scan = match this.store.proposal_facts_by_scan(q).await {
                    Ok(scan) => scan,
                    Err(e) => return Some(Err(e.into())),
                };
                let from_scratch = model.facts(q);
                if *kept != scan || *kept != from_scratch {
                    this.mismatches.lock().unwrap().push(format!(
                        "{} in a batch of {} ({}): kept {kept:?}, scan {scan:?}, fold from scratch {from_scratch:?}",
                        event.correlation_id,
                        events.len(),
                        event.payload
                    ));
                }
                seen.push((event.correlation_id.clone(), kept.clone()));
            }
            model.fold(event);
        }
        // Committed together, or (refused) handled again one at a time: kept only once.
        *this.model.lock().unwrap() = model;
        this.seen.lock().unwrap().extend(seen);
        this.batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Some(Ok(vec![Append::nothing(); events.len()]))
    }
}

fn checker(store: &Store) -> Arc<Checker> {
    Arc::new(Checker {
        store: store.clone(),
        model: Mutex::new(FactsModel::default()),
        seen: Mutex::new(Vec::new()),
        mismatches: Mutex::new(Vec::new()),
        batches: Default::default(),
    })
}

fn keeping(store: &Store, checker: &Arc<Checker>) -> Subscription<Checking> {
    let options = SubscriptionOptions { keeps_facts: true, ..Default::default() };
    Subscription::new(store.clone(), NAME, bookkeeper_core::store::facts::filter(), Checking(checker.clone()))
        .with_options(options)
}

/// Drains, riding over the retries a rebuild causes (the facts are behind until
/// the next step folds them).
async fn drain(sub: &mut Subscription<Checking>) {
    for _ in 0..20 {
        match sub.drain().await {
            Ok(_) => return,
            Err(e) => assert!(e.to_string().contains("facts read model"), "only a rebuild may stop it: {e}"),
        }
    }
    panic!("never caught up");
}

/// A random proposal or outcome over a few vendors, accounts, invoice numbers and
/// requesters, so histories collide often.
fn random_event(rng: &mut fastrand::Rng, n: usize, proposed: &[String], postgres: bool) -> NewEvent {
    let kind = if rng.bool() { "ReceiptAttachment" } else { "InvoiceRegistration" };
    if proposed.is_empty() || rng.u8(0..10) < 5 {
        let corr = format!("a{n}");
        let mut payload = json!({});
        let vendors: [(&str, Option<&str>); 5] =
            [("Kiwi", None), ("KIWI", None), ("Kiwi", Some("999888777")), ("Rema 1000", Some("111222333")), ("", None)];
        if rng.u8(0..10) < 9 {
            let (name, org) = vendors[rng.usize(0..vendors.len())];
            payload["vendor"] = json!({"name": name});
            if let Some(org) = org {
                payload["vendor"]["organization_number"] = json!(org);
            }
        }
        match rng.u8(0..10) {
            0 => {}
            1 => payload["amount"] = json!({"minor": format!("{}", rng.i64(0..90_000)), "currency": "NOK"}),
            2 => payload["amount"] = json!({"minor": -rng.i64(1..5_000), "currency": "NOK"}),
            _ => payload["amount"] = json!({"minor": rng.i64(0..200_000), "currency": "NOK"}),
        }
        if let Some(account) = [Some("6800"), Some("6540"), None][rng.usize(0..3)] {
            payload["account"] = json!(account);
        }
        if let Some(number) = [Some("A1"), Some("A2"), Some("A3"), Some("7"), None][rng.usize(0..5)] {
            // The same number now and then as a JSON number, as an operator's
            // manual append may write it: the scan reads it as its text
            // (PostgreSQL's `->>`; SQLite's scan never matched it).
            payload["invoice_number"] = if number == "7" && postgres && rng.bool() { json!(7) } else { json!(number) };
        }
        if let Some(by) = [Some("user:ola"), Some("user:kari"), None][rng.usize(0..3)] {
            payload["requested_by"] = json!(by);
        }
        return NewEvent::new(format!("{kind}Proposed"), "book-e", "PROPOSED", &corr).with_payload(payload);
    }
    // An outcome for an earlier action (now and then one nobody proposed, or a
    // second one for the same action).
    let corr = if rng.u8(0..20) == 0 { format!("ghost{n}") } else { proposed[rng.usize(0..proposed.len())].clone() };
    let stage = ["Executed", "Executed", "Rejected", "Approved"][rng.usize(0..4)];
    NewEvent::new(format!("{kind}{stage}"), "system", "X", &corr)
}

async fn kept_facts_equal_the_scan_and_a_fold_from_scratch_on_random_histories(db: &TestDb) {
    let seed = std::env::var("FACTS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let store = &db.store;
    let checker = checker(store);
    let mut sub = keeping(store, &checker);
    let mut proposed: Vec<String> = Vec::new();
    let mut n = 0;
    for round in 0..12 {
        for _ in 0..rng.usize(2..6) {
            let batch: Vec<NewEvent> = (0..rng.usize(1..5))
                .map(|_| {
                    n += 1;
                    random_event(&mut rng, n, &proposed, store.backend_name() == "postgres")
                })
                .collect();
            for e in &batch {
                if e.event_type.ends_with("Proposed") {
                    proposed.push(e.correlation_id.clone());
                }
            }
            store.append_events(batch).await.unwrap();
        }
        if round % 4 == 3 {
            // A rebuild while the keeper runs: the next proposals wait for the fold.
            store.reset_facts().await.unwrap();
            assert!(!store.facts_progress(NAME).await.unwrap().in_sync());
        }
        drain(&mut sub).await;
        assert!(store.facts_progress(NAME).await.unwrap().in_sync(), "seed {seed}");
    }
    let mismatches = checker.mismatches.lock().unwrap().clone();
    assert!(mismatches.is_empty(), "seed {seed} (FACTS_SEED={seed} repeats it):\n{}", mismatches.join("\n"));
    let seen = checker.seen.lock().unwrap().clone();
    assert!(seen.len() >= proposed.len(), "every proposal was checked (seed {seed})");
    assert!(checker.batches.load(std::sync::atomic::Ordering::SeqCst) > 0, "queues went the batch path (seed {seed})");
    // The histories are rich enough that the facts were not all empty.
    assert!(seen.iter().any(|(_, f)| f.vendor_payments >= 2 && f.vendor_total_minor > 0), "seed {seed}");
    assert!(seen.iter().any(|(_, f)| f.duplicate_invoice_registered), "seed {seed}");
    assert!(seen.iter().any(|(_, f)| f.duplicate_invoice_proposed), "seed {seed}");
    assert!(seen.iter().any(|(_, f)| f.account_month_to_date_minor > 0 && f.requester_today > 0), "seed {seed}");
}

async fn a_rebuild_is_folded_again_only_by_the_lease_holder(db: &TestDb) {
    let store = &db.store;
    let checker = checker(store);
    let invoice = |corr: &str, minor: i64| {
        NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", corr).with_payload(json!({
            "vendor": {"name": "Kiwi"}, "amount": {"minor": minor, "currency": "NOK"}, "invoice_number": corr
        }))
    };
    let executed = |corr: &str| NewEvent::new("InvoiceRegistrationExecuted", "accounting-api", "EXECUTED", corr);
    let mut events = Vec::new();
    for i in 0..600 {
        events.push(invoice(&format!("p{i}"), 100));
        events.push(executed(&format!("p{i}")));
    }
    for chunk in events.chunks(400) {
        store.append_events(chunk.to_vec()).await.unwrap();
    }
    let mut sub = keeping(store, &checker);
    drain(&mut sub).await;
    let progress = store.facts_progress(NAME).await.unwrap();
    assert!(progress.in_sync() && progress.folded > bookkeeper_core::Cursor::START);

    store.reset_facts().await.unwrap();
    let reset = store.facts_progress(NAME).await.unwrap();
    assert_eq!((reset.folded, reset.checkpoint), (bookkeeper_core::Cursor::START, progress.checkpoint));
    // Someone not holding the lease cannot fold (nor judge on half-folded facts).
    let refused = store.catch_up_facts(NAME, "someone-else", 100, |_| {}).await;
    assert!(matches!(refused, Err(StoreError::LeaseLost(_))), "{refused:?}");
    let next = store.append_events(vec![invoice("next", 100)]).await.unwrap();
    let q = FactsQuery {
        before: store.cursor_at(next[0].position).await.unwrap(),
        correlation_id: "next".into(),
        vendor_name: Some("kiwi".into()),
        vendor_org: None,
        account: None,
        invoice_number: Some("p7".into()),
        requested_by: None,
        // The proposal's own day (by the database's clock), as Review-E asks.
        today: store.read_correlation("next").await.unwrap()[0].created_at.date_naive(),
    };
    assert!(matches!(store.proposal_facts(&q, NAME).await, Err(StoreError::FactsBehind { .. })));
    // The lease holder folds it again, in batches (1,200 events > one batch), and
    // judges the next proposal on the same facts as the scan.
    drain(&mut sub).await;
    assert!(store.facts_progress(NAME).await.unwrap().in_sync());
    let kept = store.proposal_facts(&q, NAME).await.unwrap();
    assert_eq!((kept.vendor_payments, kept.vendor_total_minor), (600, 60_000));
    assert!(kept.duplicate_invoice_registered);
    assert!(checker.mismatches.lock().unwrap().is_empty(), "{:?}", checker.mismatches.lock().unwrap());
}
