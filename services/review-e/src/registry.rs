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

use bookkeeper_core::store::Pruned;
use bookkeeper_core::{Cursor, RecordedEvent, Store, StoreError, TypeFilter};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use bookkeeper_policy_sdk::{Facts, Outcome, Proposal};

use crate::policy::{
    combine, Combined, Limits, LimitsRequest, LoadError, LoadedPolicy, Mode, PolicyEngine, PolicySet, RecordedLimits,
    Verdict,
};

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
    /// The limits it runs under, granted when it was published. Absent in
    /// publications from before per-policy limits: those run under the
    /// operator's defaults, as they always did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<RecordedLimits>,
    /// The contract version it was built against (`0.1.0`, ...); absent in
    /// publications from before contract versions were recorded (all 0.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    /// What its author asked for (`limits` is what was granted): a change is
    /// a change of the request, so replicas with different defaults agree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked: Option<LimitsRequest>,
}

impl Published {
    /// What its author asked for (nothing, for a publication from before limits).
    pub fn request(&self) -> LimitsRequest {
        self.asked.unwrap_or_default()
    }

    /// The limits it runs under: as granted, or the engine's defaults.
    pub fn limits_on(&self, engine: &PolicyEngine) -> Limits {
        self.limits.map(Limits::from).unwrap_or(*engine.defaults())
    }
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

/// A published policy this process cannot load (a changed engine, a lowered
/// limit, a bad blob). It still counts: fail closed, every proposal it would judge
/// goes to a person, naming it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unloaded {
    /// Policy name (or `position <n>` when its publication cannot be read).
    pub name: String,
    /// Its version, when known.
    pub version: String,
    /// Its component digest, when known.
    pub digest: String,
    /// Enforcing or shadow (enforcing when unknown).
    pub mode: Mode,
    /// Proposal types it judges (every type when unknown).
    pub applies_to: Vec<String>,
    /// Why it cannot be loaded.
    pub why: String,
    /// Who published it.
    pub actor: String,
    /// Position of the publication.
    pub position: i64,
}

impl Unloaded {
    fn judges(&self, proposal_type: &str) -> bool {
        self.applies_to.is_empty() || self.applies_to.iter().any(|t| t == "*" || t == proposal_type)
    }

    fn verdict(&self) -> Verdict {
        Verdict {
            policy: self.name.clone(),
            version: self.version.clone(),
            digest: self.digest.clone(),
            mode: self.mode,
            outcome: Outcome::Escalate,
            reason: format!("published but not loaded on this replica ({}); a person decides", self.why),
            fault: Some(format!("not loaded: {}", self.why)),
            micros: 0,
        }
    }
}

/// One consistent policy set with where each policy came from.
#[derive(Debug, Clone, Default)]
pub struct ActiveSet {
    /// The loaded policies.
    pub set: PolicySet,
    /// Published policies this process cannot load, per name: they still count.
    pub unloaded: BTreeMap<String, Unloaded>,
    /// Per policy name.
    pub provenance: BTreeMap<String, Provenance>,
    /// The last policy event applied (its id), per policy name.
    pub last_event: BTreeMap<String, uuid::Uuid>,
    /// Read position of the last policy event applied.
    pub cursor: Cursor,
}

impl ActiveSet {
    /// Evaluates the set; every enforcing policy that is published but not loaded
    /// and would judge this proposal sends it to a person.
    pub fn evaluate(&self, proposal: &Proposal, facts: &Facts) -> Combined {
        let combined = self.set.evaluate(proposal, facts);
        let missing: Vec<Verdict> =
            self.unloaded.values().filter(|u| u.judges(&proposal.proposal_type)).map(Unloaded::verdict).collect();
        if missing.is_empty() {
            return combined;
        }
        let mut verdicts = combined.verdicts;
        verdicts.extend(missing);
        combine(verdicts)
    }
}

/// The set in force in this process.
#[derive(Clone)]
pub struct Registry {
    engine: PolicyEngine,
    current: Arc<RwLock<Arc<ActiveSet>>>,
    changed: Arc<watch::Sender<Cursor>>,
    /// One catch-up at a time: a set is built from the one before it, and a
    /// large component can take seconds to compile.
    applying: Arc<tokio::sync::Mutex<()>>,
}

impl Registry {
    /// An empty registry on `engine`.
    pub fn new(engine: PolicyEngine) -> Registry {
        Registry {
            engine,
            current: Arc::new(RwLock::new(Arc::new(ActiveSet::default()))),
            changed: Arc::new(watch::Sender::new(Cursor::START)),
            applying: Arc::new(tokio::sync::Mutex::new(())),
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
    ///
    /// A policy being compiled is not in force until it is ready: the set in
    /// force meanwhile is the one before its event, whole, and the new set
    /// replaces it at once.
    pub async fn catch_up(&self, store: &Store) -> Result<usize, StoreError> {
        let _one_at_a_time = self.applying.lock().await;
        let filter = TypeFilter::of([PUBLISHED, RETIRED]);
        // Everything pending first (policy events are few), so a publication a
        // later event replaces or retires is never loaded: a restart compiles
        // only what is in force, not every version the log ever held.
        let mut pending = Vec::new();
        let mut from = self.current().cursor;
        loop {
            let batch = store.read(from, &filter, 100).await?;
            if batch.events.is_empty() {
                from = from.max(batch.next);
                break;
            }
            from = batch.next;
            pending.extend(batch.events);
        }
        let name_of = |e: &RecordedEvent| e.payload.get("name").and_then(|n| n.as_str()).map(str::to_string);
        for (i, event) in pending.iter().enumerate() {
            let name = name_of(event);
            let superseded = event.event_type == PUBLISHED
                && name
                    .as_ref()
                    .is_some_and(|n| pending[i + 1..].iter().any(|later| name_of(later).as_ref() == Some(n)));
            if superseded {
                let (cursor, id) = (event.cursor(), event.event_id);
                self.swap(|s| {
                    s.cursor = cursor;
                    if let Some(name) = name {
                        s.last_event.insert(name, id);
                    }
                });
            } else {
                self.apply(store, event).await;
            }
        }
        if from > self.current().cursor {
            self.swap(|s| s.cursor = from);
        }
        Ok(pending.len())
    }

    async fn apply(&self, store: &Store, event: &RecordedEvent) {
        let name = event.payload.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_string();
        let mut next = (*self.current()).clone();
        next.cursor = event.cursor();
        next.last_event.insert(name.clone(), event.event_id);
        let text = |k: &str| event.payload.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        match event.event_type.as_str() {
            PUBLISHED => match serde_json::from_value::<Published>(event.payload.clone()) {
                Ok(published) => match self.load(store, &published).await {
                    Ok(policy) => {
                        tracing::info!(policy = %published.name, version = %published.version,
                            digest = %published.digest, mode = ?published.mode, actor = %event.actor, "policy in force");
                        next.set = next.set.with(policy, published.mode);
                        next.unloaded.remove(&published.name);
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
                    // engine, a lowered limit, a corrupt blob) must not take the
                    // others down, nor let them decide without it.
                    Err(why) => {
                        tracing::error!(policy = %name, position = event.position, %why,
                            "published policy cannot be loaded; proposals it would judge go to a person");
                        next.set = next.set.without(&published.name);
                        next.provenance.remove(&published.name);
                        next.unloaded.insert(
                            published.name.clone(),
                            Unloaded {
                                name: published.name,
                                version: published.version,
                                digest: published.digest,
                                mode: published.mode,
                                applies_to: published.applies_to,
                                why,
                                actor: event.actor.clone(),
                                position: event.position,
                            },
                        );
                    }
                },
                Err(e) => {
                    tracing::error!(position = event.position, error = %e,
                        "malformed PolicyPublished; every proposal goes to a person until it is retired");
                    let name = if name.is_empty() { format!("position {}", event.position) } else { name.clone() };
                    next.set = next.set.without(&name);
                    next.provenance.remove(&name);
                    next.unloaded.insert(
                        name.clone(),
                        Unloaded {
                            name,
                            version: text("version"),
                            digest: text("digest"),
                            mode: Mode::Enforcing,
                            applies_to: Vec::new(),
                            why: format!("its publication cannot be read: {e}"),
                            actor: event.actor.clone(),
                            position: event.position,
                        },
                    );
                }
            },
            _ => {
                tracing::info!(policy = %name, actor = %event.actor, "policy retired");
                next.set = next.set.without(&name);
                next.provenance.remove(&name);
                next.unloaded.remove(&name);
            }
        }
        self.swap(|s| *s = next);
    }

    async fn load(&self, store: &Store, published: &Published) -> Result<LoadedPolicy, String> {
        let digest = &published.digest;
        let blob = store
            .get_blob(digest)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("component {digest} is not stored"))?;
        let limits = published.limits_on(&self.engine);
        let policy = self.load_component(store, Arc::new(blob.bytes), limits).await.map_err(|e| e.to_string())?;
        // In force: proposals will wait for its instances, so a slow one keeps spares.
        tokio::task::spawn_blocking(move || policy.with_spares())
            .await
            .map_err(|e| format!("loading did not complete: {e}"))
    }

    /// Loads a component under `limits`, through the compile cache: its
    /// compilation by this engine is read from the store when there, and
    /// saved there when it had to be made (only Review-E's role may do either;
    /// any other connection simply compiles).
    pub async fn load_component(
        &self,
        store: &Store,
        bytes: Arc<Vec<u8>>,
        limits: Limits,
    ) -> Result<LoadedPolicy, LoadError> {
        let digest = PolicyEngine::digest(&bytes);
        let fingerprint = self.engine.fingerprint().to_string();
        // Compiled in this process already (its own publication, a replaced
        // mode): no need to read tens of megabytes back from the store.
        let artifact = if self.engine.has_compiled(&digest) {
            None
        } else {
            match store.compiled_policy(&digest, &fingerprint).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::debug!(%digest, error = %e, "compile cache unreadable; compiling");
                    None
                }
            }
        };
        let engine = self.engine.clone();
        let started = std::time::Instant::now();
        let loaded = tokio::task::spawn_blocking(move || engine.load_limited(&bytes, limits, artifact.as_deref()))
            .await
            .map_err(|e| LoadError::Invalid(format!("loading did not complete: {e}")))??;
        if let Some(artifact) = &loaded.compiled {
            tracing::info!(%digest, took_ms = started.elapsed().as_millis() as u64, bytes = artifact.len(),
                "policy compiled");
            if let Err(e) = store.save_compiled_policy(&digest, &fingerprint, artifact).await {
                tracing::debug!(%digest, error = %e, "compilation not cached");
            }
        }
        Ok(loaded.policy)
    }

    /// Throws away compiled policies no policy in force has needed for
    /// `keep_for` (retired or replaced components, other engines' copies): a
    /// Python or JavaScript policy's compilation is tens of megabytes. The ones
    /// in force here count as used now.
    pub async fn prune_compile_cache(&self, store: &Store, keep_for: Duration) -> Result<Pruned, StoreError> {
        let in_use: Vec<String> = self.current().provenance.values().map(|p| p.published.digest.clone()).collect();
        let keep_for = chrono::Duration::from_std(keep_for).unwrap_or(chrono::Duration::MAX);
        let unused_since =
            chrono::Utc::now().checked_sub_signed(keep_for).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let pruned = store.prune_compiled_policies(self.engine.fingerprint(), &in_use, unused_since).await?;
        if pruned.rows > 0 {
            tracing::info!(
                rows = pruned.rows,
                bytes = pruned.bytes,
                kept = in_use.len(),
                "compiled policies no policy in force needed were thrown away"
            );
        }
        Ok(pruned)
    }

    /// Prunes the compile cache now and then daily until `shutdown`. A failure
    /// is logged and tried again the next day: the cache is only an optimisation.
    pub async fn prune_compile_cache_daily(
        self,
        store: Store,
        keep_for: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.prune_compile_cache(&store, keep_for).await {
                tracing::warn!(error = %e, "the compile cache could not be pruned");
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(Duration::from_secs(24 * 60 * 60)) => {}
            }
        }
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
