//! Behaviour every backend must show identically.

use bookkeeper_core::testing::{Backend, TestDb};
use bookkeeper_core::{Append, Cursor, ExpectedVersion, NewEvent, StoreError, TypeFilter, ValidationError};
use serde_json::json;

use crate::helpers::{decision, proposal, PATIENCE};

crate::on_both_backends!(
    appends_get_increasing_positions_and_read_back_in_order,
    a_retried_append_writes_nothing_and_returns_the_same_positions,
    a_reused_event_id_with_other_content_is_refused,
    a_batch_with_one_bad_event_writes_nothing,
    limits_give_clear_errors_and_write_nothing,
    expected_version_admits_one_writer_and_refuses_the_other,
    concurrent_writers_with_the_same_expectation_only_one_wins,
    update_delete_and_truncate_are_refused_by_the_database,
    reads_filter_by_exact_type_and_suffix,
    a_correlation_reads_as_its_whole_story,
    resuming_from_a_position_needs_an_existing_one,
    views_derive_state_from_the_log,
    stats_count_types_and_decisions,
    versions_count_what_the_services_count,
    a_read_model_is_saved_with_its_cursor_and_replaced,
    a_compiled_policy_is_kept_per_component_and_engine,
    compiled_policies_no_policy_in_force_needs_are_thrown_away,
);

async fn count(db: &TestDb) -> usize {
    db.store.read_waiting(Cursor::START, &TypeFilter::all(), 10_000, PATIENCE).await.unwrap().events.len()
}

async fn appends_get_increasing_positions_and_read_back_in_order(db: &TestDb) {
    let events: Vec<NewEvent> = (0..5).map(|i| proposal(&format!("c-{i}"))).collect();
    let appended = db.store.append_events(events.clone()).await.unwrap();
    assert_eq!(appended.len(), 5);
    assert!(appended.windows(2).all(|w| w[0].position < w[1].position));
    assert!(appended.iter().all(|a| !a.duplicate));

    let read = db.store.read_waiting(Cursor::START, &TypeFilter::all(), 100, PATIENCE).await.unwrap();
    let ids: Vec<_> = read.events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, events.iter().map(|e| e.event_id).collect::<Vec<_>>());
    let first = &read.events[0];
    assert_eq!(first.event_type, "ReceiptAttachmentProposed");
    assert_eq!(first.actor, "book-e");
    assert_eq!(first.status, "PROPOSED");
    assert_eq!(first.payload, events[0].payload);
    assert_eq!(first.position, appended[0].position);

    // Resuming after the third event yields exactly the last two.
    let rest = db.store.read_waiting(read.events[2].cursor(), &TypeFilter::all(), 100, PATIENCE).await.unwrap();
    assert_eq!(rest.events.len(), 2);
    assert_eq!(rest.events[0].event_id, events[3].event_id);
}

async fn a_retried_append_writes_nothing_and_returns_the_same_positions(db: &TestDb) {
    let batch = vec![proposal("c-1"), proposal("c-2")];
    let first = db.store.append_events(batch.clone()).await.unwrap();
    let again = db.store.append_events(batch.clone()).await.unwrap();
    assert_eq!(
        first.iter().map(|a| a.position).collect::<Vec<_>>(),
        again.iter().map(|a| a.position).collect::<Vec<_>>()
    );
    assert!(again.iter().all(|a| a.duplicate));
    assert_eq!(count(db).await, 2);

    // Also when the retry carries a version expectation its first attempt satisfied.
    let e = proposal("c-3");
    let a = db.store.append(Append::one(e.clone()).expecting("c-3", ExpectedVersion::NoEvents)).await.unwrap();
    let b = db.store.append(Append::one(e).expecting("c-3", ExpectedVersion::NoEvents)).await.unwrap();
    assert_eq!(a[0].position, b[0].position);
    assert!(b[0].duplicate);
    assert_eq!(count(db).await, 3);
}

async fn a_reused_event_id_with_other_content_is_refused(db: &TestDb) {
    let original = proposal("c-1");
    db.store.append_events(vec![original.clone()]).await.unwrap();
    let mut imposter = proposal("c-other");
    imposter.event_id = original.event_id;
    let err = db.store.append_events(vec![proposal("c-2"), imposter]).await.unwrap_err();
    assert!(matches!(err, StoreError::EventIdReused { event_id } if event_id == original.event_id), "{err}");
    assert_eq!(count(db).await, 1, "the good event of the refused batch must not be written");
}

async fn a_batch_with_one_bad_event_writes_nothing(db: &TestDb) {
    let mut bad = proposal("c-3");
    bad.event_type = String::new();
    let err = db.store.append_events(vec![proposal("c-1"), proposal("c-2"), bad]).await.unwrap_err();
    match err {
        StoreError::Invalid { index: 2, source: ValidationError::Empty { field: "type" } } => {}
        other => panic!("expected Invalid at index 2, got {other}"),
    }
    assert_eq!(count(db).await, 0);
}

async fn limits_give_clear_errors_and_write_nothing(db: &TestDb) {
    let huge = proposal("c").with_payload(json!({"scan": "x".repeat(1024 * 1024)}));
    let err = db.store.append_events(vec![huge]).await.unwrap_err();
    assert!(err.to_string().contains("`payload` is"), "{err}");
    assert!(err.to_string().contains("limit is 1048576 bytes"), "{err}");

    let mut no_actor = proposal("c");
    no_actor.actor = "  ".into();
    let err = db.store.append_events(vec![no_actor]).await.unwrap_err();
    assert_eq!(err.to_string(), "event 0 of the batch is invalid: `actor` must not be empty");

    let not_object = proposal("c").with_payload(json!("just a string"));
    let err = db.store.append_events(vec![not_object]).await.unwrap_err();
    assert!(err.to_string().contains("`payload` must be a JSON object"), "{err}");

    let mut no_correlation = proposal("c");
    no_correlation.correlation_id = String::new();
    assert!(db.store.append_events(vec![no_correlation]).await.is_err());
    assert_eq!(count(db).await, 0);
}

async fn expected_version_admits_one_writer_and_refuses_the_other(db: &TestDb) {
    let store = &db.store;
    store.append(Append::one(proposal("c-1")).expecting("c-1", ExpectedVersion::NoEvents)).await.unwrap();
    assert_eq!(store.version("c-1").await.unwrap(), 1);

    let err = store.append(Append::one(proposal("c-1")).expecting("c-1", ExpectedVersion::NoEvents)).await.unwrap_err();
    match &err {
        StoreError::VersionConflict { correlation_id, actual: 1, .. } if correlation_id == "c-1" => {}
        other => panic!("expected a version conflict, got {other}"),
    }
    assert!(err.is_retryable());

    let approve = decision("c-1", "Approved", "system:auto", "AUTO_APPROVED");
    store.append(Append::one(approve).expecting("c-1", ExpectedVersion::Exactly(1))).await.unwrap();
    let stale = decision("c-1", "Rejected", "user:9", "REJECTED");
    assert!(store.append(Append::one(stale).expecting("c-1", ExpectedVersion::Exactly(1))).await.is_err());
    assert_eq!(store.version("c-1").await.unwrap(), 2);
}

async fn concurrent_writers_with_the_same_expectation_only_one_wins(db: &TestDb) {
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            let e = decision("race", "Approved", &format!("user:{i}"), "APPROVED");
            store.append(Append::one(e).expecting("race", ExpectedVersion::NoEvents)).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::VersionConflict { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(db.store.version("race").await.unwrap(), 1);
}

async fn update_delete_and_truncate_are_refused_by_the_database(db: &TestDb) {
    db.store.append_events(vec![proposal("c-1"), proposal("c-2")]).await.unwrap();
    let statements: &[&str] = match db.backend() {
        Backend::Postgres => &[
            "UPDATE events SET actor = 'someone-else'",
            "UPDATE events SET payload = '{}' WHERE false",
            "DELETE FROM events",
            "DELETE FROM events WHERE correlation_id = 'c-1'",
            "TRUNCATE events",
        ],
        Backend::Sqlite => &[
            "UPDATE events SET actor = 'someone-else'",
            "DELETE FROM events WHERE correlation_id = 'c-1'",
            "DELETE FROM events",
        ],
    };
    for sql in statements {
        let result = match db.backend() {
            Backend::Postgres => sqlx::query(sql).execute(db.store.pg_pool().unwrap()).await.map(|_| ()),
            Backend::Sqlite => sqlx::query(sql).execute(db.store.sqlite_pool().unwrap()).await.map(|_| ()),
        };
        let err = result.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let events = db.store.read_waiting(Cursor::START, &TypeFilter::all(), 10, PATIENCE).await.unwrap().events;
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.actor == "book-e"));
}

async fn reads_filter_by_exact_type_and_suffix(db: &TestDb) {
    db.store
        .append_events(vec![
            proposal("a"),
            decision("a", "Approved", "system:auto", "AUTO_APPROVED"),
            NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", "b"),
            NewEvent::new("ComplianceCheckCompleted", "cron", "COMPLETED", "daily"),
            NewEvent::new("Weird_Type%", "cron", "COMPLETED", "x"),
        ])
        .await
        .unwrap();
    let types = |f: TypeFilter| {
        let store = db.store.clone();
        async move {
            store
                .read_waiting(Cursor::START, &f, 100, PATIENCE)
                .await
                .unwrap()
                .events
                .into_iter()
                .map(|e| e.event_type)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        types(TypeFilter::of(["*Proposed"])).await,
        ["ReceiptAttachmentProposed", "InvoiceRegistrationProposed"]
    );
    assert_eq!(
        types(TypeFilter::of(["ComplianceCheckCompleted", "*Approved"])).await,
        ["ReceiptAttachmentApproved", "ComplianceCheckCompleted"]
    );
    // LIKE wildcards in a suffix are literal.
    assert_eq!(types(TypeFilter::of(["*_Type%"])).await, ["Weird_Type%"]);
    assert!(types(TypeFilter::of(["*proposed"])).await.is_empty(), "matching is case-sensitive");

    // A filtered read that finds nothing still moves its cursor past what it skipped.
    let batch = db.store.read_waiting(Cursor::START, &TypeFilter::of(["Nothing"]), 100, PATIENCE).await.unwrap();
    assert!(batch.events.is_empty());
    let after = db.store.read_waiting(batch.next, &TypeFilter::all(), 100, PATIENCE).await.unwrap();
    assert!(after.events.is_empty(), "the cursor should be past every settled event");
}

async fn a_correlation_reads_as_its_whole_story(db: &TestDb) {
    let p = proposal("abc-123");
    db.store.append_events(vec![p.clone(), proposal("other")]).await.unwrap();
    db.store
        .append_events(vec![decision("abc-123", "Approved", "system:auto", "AUTO_APPROVED").caused_by(p.event_id)])
        .await
        .unwrap();
    let story = db.store.read_correlation("abc-123").await.unwrap();
    let steps: Vec<_> = story.iter().map(|e| (e.event_type.as_str(), e.actor.as_str(), e.status.as_str())).collect();
    assert_eq!(
        steps,
        [
            ("ReceiptAttachmentProposed", "book-e", "PROPOSED"),
            ("ReceiptAttachmentApproved", "system:auto", "AUTO_APPROVED")
        ]
    );
    assert_eq!(story[1].causation_id, Some(p.event_id));
    assert_eq!(story[1].reason(), Some("Approved by test"));
}

async fn resuming_from_a_position_needs_an_existing_one(db: &TestDb) {
    let appended = db.store.append_events(vec![proposal("a"), proposal("b")]).await.unwrap();
    assert_eq!(db.store.cursor_at(0).await.unwrap(), Cursor::START);
    let cursor = db.store.cursor_at(appended[0].position).await.unwrap();
    let rest = db.store.read_waiting(cursor, &TypeFilter::all(), 10, PATIENCE).await.unwrap();
    assert_eq!(rest.events.len(), 1);
    assert_eq!(rest.events[0].position, appended[1].position);
    let missing = db.store.cursor_at(999_999).await.unwrap_err();
    assert_eq!(missing.to_string(), "no event at position 999999");
}

async fn views_derive_state_from_the_log(db: &TestDb) {
    let s = &db.store;
    // p1: proposed then auto-approved; p2: escalated, waiting for a person;
    // p3: just proposed; p4: approved then emergency-rejected.
    // p5: a decision that names no proposal of it (written by hand) does not count.
    let p = ["p1", "p2", "p3", "p4", "p5"].map(proposal);
    s.append_events(p.to_vec()).await.unwrap();
    s.append_events(vec![
        decision("p1", "Approved", "system:auto", "AUTO_APPROVED").caused_by(p[0].event_id),
        decision("p2", "Escalated", "review-e", "ESCALATED").caused_by(p[1].event_id),
        decision("p4", "Approved", "user:7", "APPROVED").caused_by(p[3].event_id),
        decision("p5", "Approved", "system:auto", "AUTO_APPROVED"),
    ])
    .await
    .unwrap();
    s.append_events(vec![decision("p4", "Rejected", "user:8", "REJECTED").caused_by(p[3].event_id)]).await.unwrap();

    // The trap the design warns about: status = 'PROPOSED' still finds all four.
    let raw_proposed = s
        .read_waiting(Cursor::START, &TypeFilter::all(), 100, PATIENCE)
        .await
        .unwrap()
        .events
        .iter()
        .filter(|e| e.status == "PROPOSED")
        .count();
    assert_eq!(raw_proposed, 5);

    let pending = s.pending_reviews().await.unwrap();
    let ids: Vec<_> = pending.iter().map(|p| (p.correlation_id.as_str(), p.escalated)).collect();
    assert_eq!(ids, [("p2", true), ("p3", false), ("p5", false)]);

    let stats = s.stats().await.unwrap();
    assert_eq!((stats.approved, stats.auto_approved, stats.rejected), (1, 1, 1));
    assert_eq!((stats.pending_reviews, stats.escalated_pending), (3, 1));
    assert_eq!(stats.approval_rate, Some(0.5));

    // proposal_states: the latest event decides the state.
    let states =
        raw_rows(db, "SELECT correlation_id, state, decision_type FROM proposal_states ORDER BY correlation_id").await;
    assert_eq!(
        states,
        [
            vec!["p1", "AUTO_APPROVED", "ReceiptAttachmentApproved"],
            vec!["p2", "ESCALATED", ""],
            vec!["p3", "PROPOSED", ""],
            vec!["p4", "REJECTED", "ReceiptAttachmentRejected"],
            vec!["p5", "AUTO_APPROVED", "ReceiptAttachmentApproved"],
        ]
    );

    let activity = raw_rows(db, "SELECT actor, CAST(events AS TEXT) FROM actor_activity ORDER BY actor").await;
    assert_eq!(
        activity,
        [
            vec!["book-e", "5"],
            vec!["review-e", "1"],
            vec!["system:auto", "2"],
            vec!["user:7", "1"],
            vec!["user:8", "1"],
        ]
    );
}

/// The store's versions and the services' counts of the same story agree, and
/// events beside an action do not move them.
async fn versions_count_what_the_services_count(db: &TestDb) {
    use bookkeeper_core::lifecycle;
    let s = &db.store;
    let p = proposal("v-1");
    s.append_events(vec![
        p.clone(),
        decision("v-1", "Escalated", "system:auto", "ESCALATED").caused_by(p.event_id),
        NewEvent::new("ComplianceCheckCompleted", "cron", "COMPLETED", "v-1"),
        NewEvent::new("SubscriptionEventParked", "book-e", "PARKED", "v-1"),
        NewEvent::new("PolicyPublished", "review-e", "PUBLISHED", "v-1"),
        NewEvent::new("ReceiptAttachmentExecutionFailed", "system", "FAILED", "v-1"),
    ])
    .await
    .unwrap();
    let story = s.read_correlation("v-1").await.unwrap();
    assert_eq!(lifecycle::version(&story), 4, "proposal, escalation, policy change, failure");
    assert_eq!(s.lifecycle_version("v-1").await.unwrap(), lifecycle::version(&story));
    assert_eq!(lifecycle::decisions_version(&story), 2);
    // Each expectation is refused at another count and admitted at its own; what
    // lands moves both counts by one.
    let probe = || decision("v-1", "Approved", "user:kari", "APPROVED").caused_by(p.event_id);
    for expected in [ExpectedVersion::Lifecycle(6), ExpectedVersion::Decisions(4), ExpectedVersion::Exactly(4)] {
        let refused = s.append(Append::one(probe()).expecting("v-1", expected)).await;
        assert!(matches!(refused, Err(StoreError::VersionConflict { .. })), "{expected:?}: {refused:?}");
    }
    s.append(Append::one(probe()).expecting("v-1", ExpectedVersion::Decisions(2))).await.unwrap();
    s.append(Append::one(probe()).expecting("v-1", ExpectedVersion::Lifecycle(5))).await.unwrap();
    assert_eq!(s.lifecycle_version("v-1").await.unwrap(), 6);
}

async fn stats_count_types_and_decisions(db: &TestDb) {
    let a = proposal("a");
    db.store.append_events(vec![a.clone(), proposal("b")]).await.unwrap();
    db.store
        .append_events(vec![decision("a", "Rejected", "system:auto", "REJECTED").caused_by(a.event_id)])
        .await
        .unwrap();
    let stats = db.store.stats().await.unwrap();
    assert_eq!(stats.events, 3);
    assert_eq!(
        stats.by_type_and_status,
        [
            ("ReceiptAttachmentProposed".to_string(), "PROPOSED".to_string(), 2),
            ("ReceiptAttachmentRejected".to_string(), "REJECTED".to_string(), 1)
        ]
    );
    assert_eq!(stats.approval_rate, Some(0.0));
    assert_eq!(stats.pending_reviews, 1);
}

/// Runs a query on either backend and returns every column as text ("" for NULL).
pub async fn raw_rows(db: &TestDb, sql: &str) -> Vec<Vec<String>> {
    use sqlx::Row;
    fn text<'r, R: Row>(row: &'r R, i: usize) -> String
    where
        usize: sqlx::ColumnIndex<R>,
        Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        row.try_get::<Option<String>, _>(i).ok().flatten().unwrap_or_default()
    }
    match db.backend() {
        Backend::Postgres => sqlx::query(sql)
            .fetch_all(db.store.pg_pool().unwrap())
            .await
            .unwrap()
            .iter()
            .map(|r| (0..r.len()).map(|i| text(r, i)).collect())
            .collect(),
        Backend::Sqlite => sqlx::query(sql)
            .fetch_all(db.store.sqlite_pool().unwrap())
            .await
            .unwrap()
            .iter()
            .map(|r| (0..r.len()).map(|i| text(r, i)).collect())
            .collect(),
    }
}

mod facts_and_blobs {
    use bookkeeper_core::store::FactsQuery;
    use bookkeeper_core::testing::TestDb;
    use bookkeeper_core::NewEvent;
    use serde_json::json;

    crate::on_both_backends!(facts_are_computed_from_earlier_proposals, blobs_are_content_addressed_and_append_only);

    fn invoice(corr: &str, vendor: &str, number: &str, minor: i64, requester: &str) -> NewEvent {
        NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", corr).with_payload(json!({
            "requested_by": requester, "vendor": {"name": vendor}, "invoice_number": number,
            "amount": {"minor": minor, "currency": "NOK"}, "account": "6800"
        }))
    }

    fn outcome(corr: &str, kind: &str) -> NewEvent {
        NewEvent::new(format!("InvoiceRegistration{kind}"), "system", "X", corr)
    }

    async fn facts_are_computed_from_earlier_proposals(db: &TestDb) {
        let s = &db.store;
        s.append_events(vec![
            invoice("p1", "Kiwi", "A1", 50_000, "user:ola"),
            invoice("p2", "KIWI", "A9", 90_000, "user:ola"),
            invoice("p3", "Kiwi", "A2", 10_000, "user:ola"),
            invoice("p4", "Kiwi", "A3", 10_000, "user:ola"),
            invoice("p5", "Rema", "A1", 70_000, "user:kari"),
        ])
        .await
        .unwrap();
        s.append_events(vec![
            outcome("p1", "Executed"),
            outcome("p2", "Executed"),
            outcome("p4", "Rejected"),
            outcome("p5", "Executed"),
        ])
        .await
        .unwrap();
        let me = s.append_events(vec![invoice("me", "kiwi", "A1", 1, "user:ola")]).await.unwrap();
        let before = s.cursor_at(me[0].position).await.unwrap();
        let today = chrono::Utc::now().date_naive();
        let query = |number: &str| FactsQuery {
            before,
            correlation_id: "me".into(),
            vendor_name: Some("Kiwi".into()),
            vendor_org: None,
            account: Some("6800".into()),
            invoice_number: Some(number.into()),
            requested_by: Some("user:ola".into()),
            today,
        };
        let f = s.proposal_facts_by_scan(&query("A1")).await.unwrap();
        assert_eq!((f.vendor_payments, f.vendor_total_minor, f.vendor_largest_minor), (2, 140_000, 90_000));
        assert_eq!(f.vendor_last_paid, Some(today.format("%Y-%m-%d").to_string()));
        assert_eq!(f.account_month_to_date_minor, 210_000, "every executed proposal on 6800 this month");
        assert!(f.duplicate_invoice_registered && !f.duplicate_invoice_proposed);
        assert_eq!((f.requester_last_30_days, f.requester_today), (4, 4));

        let open = s.proposal_facts_by_scan(&query("A2")).await.unwrap();
        assert!(!open.duplicate_invoice_registered && open.duplicate_invoice_proposed);
        let rejected = s.proposal_facts_by_scan(&query("A3")).await.unwrap();
        assert!(!rejected.duplicate_invoice_registered && !rejected.duplicate_invoice_proposed);

        // Events after the proposal do not change its facts.
        s.append_events(vec![outcome("p3", "Executed")]).await.unwrap();
        assert_eq!(s.proposal_facts_by_scan(&query("A1")).await.unwrap(), f);
    }

    async fn blobs_are_content_addressed_and_append_only(db: &TestDb) {
        let s = &db.store;
        let sha = s.put_blob(b"%PDF-1.7 receipt", "application/pdf").await.unwrap();
        assert_eq!(sha, bookkeeper_core::store::sha256_hex(b"%PDF-1.7 receipt"));
        assert_eq!(s.put_blob(b"%PDF-1.7 receipt", "application/pdf").await.unwrap(), sha, "idempotent");
        let blob = s.get_blob(&sha).await.unwrap().unwrap();
        assert_eq!(blob.bytes, b"%PDF-1.7 receipt");
        assert_eq!(blob.content_type, "application/pdf");
        assert!(s.get_blob(&"0".repeat(64)).await.unwrap().is_none());
        let sql = "DELETE FROM blobs";
        let refused = match db.backend() {
            bookkeeper_core::testing::Backend::Postgres => {
                sqlx::query(sql).execute(s.pg_pool().unwrap()).await.map(|_| ())
            }
            bookkeeper_core::testing::Backend::Sqlite => {
                sqlx::query(sql).execute(s.sqlite_pool().unwrap()).await.map(|_| ())
            }
        };
        assert!(refused.unwrap_err().to_string().contains("append-only"));
    }
}

async fn a_read_model_is_saved_with_its_cursor_and_replaced(db: &TestDb) {
    assert_eq!(db.store.load_read_model("test.model").await.unwrap(), None);
    let first = Cursor { transaction_id: 0, position: 4 };
    db.store.save_read_model("test.model", first, &json!({"n": 1, "name": "Strøm AS"})).await.unwrap();
    let later = Cursor { transaction_id: 0, position: 9 };
    db.store.save_read_model("test.model", later, &json!({"n": 2})).await.unwrap();
    assert_eq!(db.store.load_read_model("test.model").await.unwrap(), Some((later, json!({"n": 2}))));
}

async fn a_compiled_policy_is_kept_per_component_and_engine(db: &TestDb) {
    assert_eq!(db.store.compiled_policy("d1", "engine-a").await.unwrap(), None);
    db.store.save_compiled_policy("d1", "engine-a", b"first").await.unwrap();
    db.store.save_compiled_policy("d1", "engine-a", b"second").await.unwrap();
    db.store.save_compiled_policy("d1", "engine-b", b"other engine").await.unwrap();
    assert_eq!(db.store.compiled_policy("d1", "engine-a").await.unwrap().as_deref(), Some(&b"second"[..]));
    assert_eq!(db.store.compiled_policy("d1", "engine-b").await.unwrap().as_deref(), Some(&b"other engine"[..]));
    assert_eq!(db.store.compiled_policy("d2", "engine-a").await.unwrap(), None);
}

async fn compiled_policies_no_policy_in_force_needs_are_thrown_away(db: &TestDb) {
    db.store.save_compiled_policy("in-force", "engine-a", b"kept").await.unwrap();
    db.store.save_compiled_policy("retired", "engine-a", b"gone!").await.unwrap();
    db.store.save_compiled_policy("in-force", "engine-b", b"old engine").await.unwrap();
    let in_use = vec!["in-force".to_string()];
    let now = chrono::Utc::now();
    // Nothing was last used before an hour ago: nothing goes.
    let none = db.store.prune_compiled_policies("engine-a", &in_use, now - chrono::Duration::hours(1)).await.unwrap();
    assert_eq!(none.rows, 0);
    assert_eq!(db.store.compiled_policy("retired", "engine-a").await.unwrap().as_deref(), Some(&b"gone!"[..]));
    // Everything counts as unused from a minute ahead, except what is in force
    // for this engine: the retired component and the other engine's copy go.
    let pruned =
        db.store.prune_compiled_policies("engine-a", &in_use, now + chrono::Duration::minutes(1)).await.unwrap();
    assert_eq!(pruned, bookkeeper_core::store::Pruned { rows: 2, bytes: 15 });
    assert_eq!(db.store.compiled_policy("in-force", "engine-a").await.unwrap().as_deref(), Some(&b"kept"[..]));
    assert_eq!(db.store.compiled_policy("retired", "engine-a").await.unwrap(), None);
    assert_eq!(db.store.compiled_policy("in-force", "engine-b").await.unwrap(), None);
}
