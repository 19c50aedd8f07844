//! The active policy set of this process, followed from the log.
//!
//! Publishing or retiring a policy is an event (`PolicyPublished`,
//! `PolicyRetired`), its component a blob. Every Review-E process reads those
//! events from the start of the log and rebuilds the same set, so replicas swap
//! together and the audit trail shows who changed the rules. A swap replaces the
//! whole set at once: an evaluation holds the `Arc` it started with.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bookkeeper_core::{Cursor, RecordedEvent, Store, StoreError, TypeFilter};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::policy::{Mode, PolicyEngine, PolicySet};

/// Event type of a publication.
pub const PUBLISHED: &str = "PolicyPublished";
/// Event type of a retirement.
pub const RETIRED: &str = "PolicyRetired";

/// Payload of `PolicyPublished`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// Policy name (from its metadata).
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it does.
    pub description: String,
    /// Proposal types it judges.
    pub applies_to: Vec<String>,
    /// SHA-256 of the component, the blob that holds it.
    pub digest: String,
    /// Enforcing or shadow.
    pub mode: Mode,
    /// `upload` or `folder:<file name>`.
    pub source: String,
}

/// Payload of `PolicyRetired`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    /// Policy name.
    pub name: String,
    /// Why, in words.
    pub reason: String,
    /// `upload` or `folder:<file name>`.
    pub source: String,
}

/// Where a policy in the active set came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// The publication event.
    pub published: Published,
    /// Who published it.
    pub actor: String,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Position of the publication event.
    pub position: i64,
}

/// One consistent policy set with where each policy came from.
#[derive(Debug, Clone, Default)]
pub struct ActiveSet {
    /// The loaded policies.
    pub set: PolicySet,
    /// Per policy name.
    pub provenance: BTreeMap<String, Provenance>,
    /// The last policy event applied (its id), per policy name.
    pub last_event: BTreeMap<String, uuid::Uuid>,
    /// Read position of the last policy event applied.
    pub cursor: Cursor,
}

/// The set in force in this process.
#[derive(Clone)]
pub struct Registry {
    engine: PolicyEngine,
    current: Arc<RwLock<Arc<ActiveSet>>>,
    changed: Arc<watch::Sender<Cursor>>,
}

impl Registry {
    /// An empty registry on `engine`.
    pub fn new(engine: PolicyEngine) -> Registry {
        Registry {
            engine,
            current: Arc::new(RwLock::new(Arc::new(ActiveSet::default()))),
            changed: Arc::new(watch::Sender::new(Cursor::START)),
        }
    }

    /// The engine policies are loaded on.
    pub fn engine(&self) -> &PolicyEngine {
        &self.engine
    }

    /// The set in force now. Hold the `Arc` for the whole evaluation.
    pub fn current(&self) -> Arc<ActiveSet> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Changes to the cursor of the last policy event applied.
    pub fn changes(&self) -> watch::Receiver<Cursor> {
        self.changed.subscribe()
    }

    /// Applies every policy event after the current cursor. Returns how many.
    pub async fn catch_up(&self, store: &Store) -> Result<usize, StoreError> {
        let filter = TypeFilter::of([PUBLISHED, RETIRED]);
        let mut applied = 0;
        loop {
            let from = self.current().cursor;
            let batch = store.read(from, &filter, 100).await?;
            if batch.events.is_empty() {
                if batch.next > from {
                    self.swap(|s| s.cursor = batch.next);
                }
                return Ok(applied);
            }
            for event in &batch.events {
                self.apply(store, event).await;
                applied += 1;
            }
        }
    }

    async fn apply(&self, store: &Store, event: &RecordedEvent) {
        let name = event.payload.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_string();
        let mut next = (*self.current()).clone();
        next.cursor = event.cursor();
        next.last_event.insert(name.clone(), event.event_id);
        match event.event_type.as_str() {
            PUBLISHED => match serde_json::from_value::<Published>(event.payload.clone()) {
                Ok(published) => match self.load(store, &published.digest).await {
                    Ok(policy) => {
                        tracing::info!(policy = %published.name, version = %published.version,
                            digest = %published.digest, mode = ?published.mode, actor = %event.actor, "policy in force");
                        next.set = next.set.with(policy, published.mode);
                        next.provenance.insert(
                            published.name.clone(),
                            Provenance {
                                published,
                                actor: event.actor.clone(),
                                at: event.created_at,
                                position: event.position,
                            },
                        );
                    }
                    // It was validated when published; failing now (a changed
                    // engine, a corrupt blob) must not take the others down.
                    Err(why) => tracing::error!(policy = %name, position = event.position, %why,
                        "published policy cannot be loaded; the previous set stays for it"),
                },
                Err(e) => tracing::error!(position = event.position, error = %e, "malformed PolicyPublished"),
            },
            _ => {
                tracing::info!(policy = %name, actor = %event.actor, "policy retired");
                next.set = next.set.without(&name);
                next.provenance.remove(&name);
            }
        }
        self.swap(|s| *s = next);
    }

    async fn load(&self, store: &Store, digest: &str) -> Result<crate::policy::LoadedPolicy, String> {
        let blob = store
            .get_blob(digest)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("component {digest} is not stored"))?;
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.load(&blob.bytes))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    fn swap(&self, change: impl FnOnce(&mut ActiveSet)) {
        let cursor = {
            let mut guard = self.current.write().unwrap_or_else(|p| p.into_inner());
            let mut next = (**guard).clone();
            change(&mut next);
            let cursor = next.cursor;
            *guard = Arc::new(next);
            cursor
        };
        self.changed.send_replace(cursor);
    }

    /// Follows policy events until `shutdown`, swapping as they arrive.
    pub async fn follow(self, store: Store, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut wakeups = store.wakeups();
        loop {
            let wait = match self.catch_up(&store).await {
                Ok(_) => Duration::from_millis(500),
                Err(e) => {
                    tracing::warn!(error = %e, "reading policy events failed; retrying");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = wakeups.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
