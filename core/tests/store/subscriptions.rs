//! Durable subscriptions, on both backends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bookkeeper_core::testing::{Backend, TestDb};
use bookkeeper_core::{
    Append, Handler, HandlerError, RecordedEvent, StepOutcome, Subscription, SubscriptionError, SubscriptionOptions,
    TypeFilter,
};
use tokio::sync::mpsc;

use crate::helpers::{decision, proposal};

crate::on_both_backends!(
    a_subscription_handles_each_matching_event_once_and_resumes_after_restart,
    handler_events_and_checkpoint_commit_together,
    a_failing_handler_does_not_move_the_checkpoint_and_is_retried,
    only_one_consumer_per_name_is_active,
    two_replicas_running_never_handle_an_event_twice,
    a_live_subscriber_wakes_on_append_from_another_store,
    polling_finds_events_that_sent_no_wake_up,
);

/// Records what it saw; optionally appends a decision for each proposal.
#[derive(Default, Clone)]
struct Recorder {
    seen: Arc<Mutex<Vec<RecordedEvent>>>,
    decide: bool,
    fail_first: Arc<AtomicUsize>,
}

impl Recorder {
    fn seen_ids(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|e| e.correlation_id.clone()).collect()
    }
}

impl Handler for Recorder {
    async fn handle(&self, event: &RecordedEvent) -> Result<Append, HandlerError> {
        if self.fail_first.load(Ordering::SeqCst) > 0 {
            self.fail_first.fetch_sub(1, Ordering::SeqCst);
            return Err(HandlerError::transient("Fiken answered 503"));
        }
        self.seen.lock().unwrap().push(event.clone());
        if self.decide {
            let e =
                decision(&event.correlation_id, "Approved", "system:auto", "AUTO_APPROVED").caused_by(event.event_id);
            return Ok(Append::one(e));
        }
        Ok(Append::nothing())
    }
}

fn fast() -> SubscriptionOptions {
    SubscriptionOptions {
        poll_interval: Duration::from_millis(50),
        retry: bookkeeper_core::retry::Backoff::new(Duration::from_millis(5), Duration::from_millis(20)),
        ..SubscriptionOptions::default()
    }
}

async fn a_subscription_handles_each_matching_event_once_and_resumes_after_restart(db: &TestDb) {
    db.store
        .append_events(vec![proposal("p1"), decision("p1", "Approved", "system:auto", "AUTO_APPROVED"), proposal("p2")])
        .await
        .unwrap();
    let recorder = Recorder::default();
    let options = SubscriptionOptions { lease_ttl: Duration::from_millis(200), ..fast() };
    let mut sub =
        Subscription::new(db.store.clone(), "test.proposals", TypeFilter::of(["*Proposed"]), recorder.clone())
            .with_options(options.clone());
    assert_eq!(sub.drain().await.unwrap(), 2);
    assert_eq!(recorder.seen_ids(), ["p1", "p2"]);
    drop(sub); // a crash: the lease is not released

    db.store.append_events(vec![proposal("p3")]).await.unwrap();
    // The restarted consumer keeps nothing in memory and must wait for the
    // crashed one's lease to expire before it takes over.
    let mut restarted =
        Subscription::new(db.store.clone(), "test.proposals", TypeFilter::of(["*Proposed"]), recorder.clone())
            .with_options(options);
    let mut waited = 0;
    while restarted.step().await.unwrap() == StepOutcome::Standby {
        waited += 1;
        assert!(waited < 200, "the crashed consumer's lease never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    restarted.drain().await.unwrap();
    assert_eq!(recorder.seen_ids(), ["p1", "p2", "p3"], "nothing twice, nothing missed");
}

async fn handler_events_and_checkpoint_commit_together(db: &TestDb) {
    db.store.append_events(vec![proposal("p1"), proposal("p2")]).await.unwrap();
    let recorder = Recorder { decide: true, ..Recorder::default() };
    let mut sub = Subscription::new(db.store.clone(), "test.decider", TypeFilter::of(["*Proposed"]), recorder.clone());
    assert_eq!(sub.drain().await.unwrap(), 2);
    let stats = db.store.stats().await.unwrap();
    assert_eq!(stats.approved, 2);
    let status = stats.subscriptions.iter().find(|s| s.name == "test.decider").unwrap();
    assert_eq!(status.handled, 2);
    let story = db.store.read_correlation("p2").await.unwrap();
    assert!(status.position >= story[0].position);
    assert_eq!(story[1].causation_id, Some(story[0].event_id));
    // The decisions it appended are not proposals: running again handles nothing.
    assert_eq!(sub.drain().await.unwrap(), 0);
}

async fn a_failing_handler_does_not_move_the_checkpoint_and_is_retried(db: &TestDb) {
    let appended = db.store.append_events(vec![proposal("p1")]).await.unwrap();
    let recorder = Recorder { fail_first: Arc::new(AtomicUsize::new(2)), ..Recorder::default() };
    let mut sub =
        Subscription::new(db.store.clone(), "test.flaky", TypeFilter::all(), recorder.clone()).with_options(fast());
    let err = settled_step(&mut sub).await.unwrap_err();
    assert!(err.to_string().contains("Fiken answered 503"), "{err}");
    let stats = db.store.stats().await.unwrap();
    let status = stats.subscriptions.iter().find(|s| s.name == "test.flaky").unwrap();
    assert!(status.position < appended[0].position, "checkpoint must not move past a failed event");
    assert_eq!(status.last_error.as_deref(), Some("Fiken answered 503"));

    // The run loop retries with backoff until the handler recovers.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sub.run(async move {
        let _ = stop_rx.await;
    }));
    wait_until(|| recorder.seen_ids().len() == 1).await;
    let _ = stop_tx.send(());
    task.await.unwrap();
    let stats = db.store.stats().await.unwrap();
    let status = stats.subscriptions.iter().find(|s| s.name == "test.flaky").unwrap();
    assert_eq!(status.handled, 1);
    assert_eq!(status.last_error, None, "a success clears the error");
    assert_eq!(status.lease_holder, None, "a clean stop releases the lease");
}

async fn only_one_consumer_per_name_is_active(db: &TestDb) {
    db.store.append_events(vec![proposal("p1")]).await.unwrap();
    let a = Recorder::default();
    let b = Recorder::default();
    let mut first = Subscription::new(db.store.clone(), "test.single", TypeFilter::all(), a.clone());
    let other_store = db.another_store().await;
    let mut second = Subscription::new(other_store, "test.single", TypeFilter::all(), b.clone());
    assert_eq!(settled_step(&mut first).await.unwrap(), StepOutcome::Handled(1));
    assert_eq!(settled_step(&mut second).await.unwrap(), StepOutcome::Standby);
    assert!(b.seen_ids().is_empty());
    assert!(first.is_active() && !second.is_active());
}

async fn two_replicas_running_never_handle_an_event_twice(db: &TestDb) {
    #[derive(Clone, Default)]
    struct Exclusive {
        in_flight: Arc<AtomicUsize>,
        max_in_flight: Arc<AtomicUsize>,
        handled: Arc<Mutex<HashMap<String, usize>>>,
    }
    impl Handler for Exclusive {
        async fn handle(&self, event: &RecordedEvent) -> Result<Append, HandlerError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            *self.handled.lock().unwrap().entry(event.correlation_id.clone()).or_default() += 1;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(Append::nothing())
        }
    }
    let shared = Exclusive::default();
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let store = db.another_store().await;
        let sub = Subscription::new(store, "test.replicated", TypeFilter::all(), shared.clone()).with_options(fast());
        let mut stop = stop_tx.subscribe();
        tasks.push(tokio::spawn(sub.run(async move {
            let _ = stop.recv().await;
        })));
    }
    for chunk in 0..10 {
        let events = (0..10).map(|i| proposal(&format!("p{chunk}-{i}"))).collect();
        db.store.append_events(events).await.unwrap();
    }
    wait_until(|| shared.handled.lock().unwrap().len() == 100).await;
    let _ = stop_tx.send(());
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(shared.max_in_flight.load(Ordering::SeqCst), 1, "two replicas handled at once");
    assert!(shared.handled.lock().unwrap().values().all(|n| *n == 1), "an event was handled twice");
}

async fn a_live_subscriber_wakes_on_append_from_another_store(db: &TestDb) {
    struct Forward(mpsc::UnboundedSender<String>);
    impl Handler for Forward {
        async fn handle(&self, event: &RecordedEvent) -> Result<Append, HandlerError> {
            let _ = self.0.send(event.correlation_id.clone());
            Ok(Append::nothing())
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    // A long poll interval: only a wake-up can deliver within the deadline below.
    let options = SubscriptionOptions { poll_interval: Duration::from_secs(30), ..SubscriptionOptions::default() };
    let sub =
        Subscription::new(db.another_store().await, "test.live", TypeFilter::all(), Forward(tx)).with_options(options);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sub.run(async move {
        let _ = stop_rx.await;
    }));
    // Let it take its lease and go idle before appending.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writer = db.another_store().await;
    for i in 0..3 {
        writer.append_events(vec![proposal(&format!("live-{i}"))]).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("no wake-up within 5 s");
        assert_eq!(got.as_deref(), Some(format!("live-{i}").as_str()));
    }
    let _ = stop_tx.send(());
    task.await.unwrap();
}

async fn polling_finds_events_that_sent_no_wake_up(db: &TestDb) {
    let recorder = Recorder::default();
    let sub =
        Subscription::new(db.store.clone(), "test.poll", TypeFilter::all(), recorder.clone()).with_options(fast());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sub.run(async move {
        let _ = stop_rx.await;
    }));
    // Written behind the store's back, as a process that crashed before its
    // NOTIFY would leave it: no wake-up is sent.
    let sql = "INSERT INTO events (event_id, type, actor, status, correlation_id) \
               VALUES ('6f1c7c57-3b0e-4c39-9a53-0f4b8a7b9c11', 'ReceiptAttachmentProposed', 'book-e', 'PROPOSED', 'quiet')";
    match db.backend() {
        Backend::Postgres => sqlx::query(sql).execute(db.store.pg_pool().unwrap()).await.map(|_| ()),
        Backend::Sqlite => sqlx::query(sql).execute(db.store.sqlite_pool().unwrap()).await.map(|_| ()),
    }
    .unwrap();
    wait_until(|| recorder.seen_ids() == ["quiet"]).await;
    let _ = stop_tx.send(());
    task.await.unwrap();
}

/// One step, repeated while events wait behind an open transaction elsewhere on
/// the server (tests share one PostgreSQL cluster).
async fn settled_step<H: Handler>(sub: &mut Subscription<H>) -> Result<StepOutcome, SubscriptionError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match sub.step().await {
            Ok(StepOutcome::CaughtUp { held_back: true }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            other => return other,
        }
    }
}

/// Waits (up to 10 s) for a condition that background tasks will make true.
pub async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "condition not met within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
