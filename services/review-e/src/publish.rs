//! Changing the rules: validate a component, store it, and record the change as
//! an event every Review-E process follows.

use bookkeeper_core::event::derived_event_id;
use bookkeeper_core::{Append, ExpectedVersion, NewEvent, Store, StoreError};
use uuid::Uuid;

use crate::policy::{Limits, LimitsRequest, LoadError, Mode, RecordedLimits};
use crate::registry::{Published, Registry, Retired, PUBLISHED, RETIRED};

/// Why a change was refused. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The component is not a usable policy.
    #[error("policy refused: {0}")]
    Invalid(#[from] LoadError),
    /// No active policy has that name.
    #[error("no active policy is called `{0}`")]
    NotFound(String),
    /// Someone else changed the same policy at the same moment; try again.
    #[error("policy `{0}` was changed concurrently; try again")]
    Conflict(String),
    /// The log could not be written.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for PublishError {
    fn from(e: StoreError) -> Self {
        PublishError::Store(e)
    }
}

/// Validates and publishes a component. Publishing what is already in force
/// (same digest, same mode, same request) changes nothing and returns it,
/// whatever this replica's defaults.
///
/// The component runs under the limits its author asks for (`request`; the
/// operator's defaults where it asks nothing), refused above the operator's
/// maxima; the request, the limits granted and the contract version it speaks
/// are recorded in the event.
pub async fn publish(
    store: &Store,
    registry: &Registry,
    bytes: Vec<u8>,
    mode: Mode,
    request: LimitsRequest,
    actor: &str,
    source: &str,
) -> Result<Published, PublishError> {
    let granted = grant(registry, &request)?;
    let bytes = std::sync::Arc::new(bytes);
    let loaded = registry.load_component(store, bytes.clone(), granted).await?;
    registry.catch_up(store).await?;
    let active = registry.current();
    let name = loaded.metadata.name.clone();
    let recorded = RecordedLimits::from(granted);
    if let Some(p) = active.provenance.get(&name) {
        if p.published.digest == loaded.digest && p.published.mode == mode && p.published.request() == request {
            return Ok(p.published.clone());
        }
    }
    store.put_blob(&bytes, "application/wasm").await?;
    let published = Published {
        name: name.clone(),
        version: loaded.metadata.version.clone(),
        description: loaded.metadata.description.clone(),
        applies_to: loaded.metadata.applies_to.clone(),
        digest: loaded.digest.clone(),
        mode,
        source: source.to_string(),
        limits: Some(recorded),
        contract: Some(loaded.contract.version().to_string()),
        asked: Some(request),
    };
    let previous = active.last_event.get(&name).copied();
    let event = NewEvent::new(PUBLISHED, actor, "PUBLISHED", correlation(&name))
        .with_payload(serde_json::to_value(&published).unwrap_or_default())
        // Replicas watching the same folder derive the same id for the same
        // change, so the log records it once.
        .with_id(derived_event_id(
            previous.unwrap_or(Uuid::nil()),
            &format!("publish:{}:{mode:?}:{}", loaded.digest, limits_key(&request)),
        ));
    append_change(store, &name, event).await?;
    registry.catch_up(store).await?;
    Ok(published)
}

/// The limits granted to what an author asks for on `registry`'s engine: the
/// operator's defaults where nothing is asked, refused above its maxima.
pub fn grant(registry: &Registry, request: &LimitsRequest) -> Result<Limits, PublishError> {
    let engine = registry.engine();
    request.grant(engine.defaults(), engine.maxima()).map_err(|e| PublishError::Invalid(LoadError::from(e)))
}

/// Retires the policy called `name`.
pub async fn retire(
    store: &Store,
    registry: &Registry,
    name: &str,
    actor: &str,
    source: &str,
    reason: &str,
) -> Result<(), PublishError> {
    registry.catch_up(store).await?;
    let active = registry.current();
    if active.set.get(name).is_none() {
        return Err(PublishError::NotFound(name.to_string()));
    }
    let previous = active.last_event.get(name).copied().unwrap_or(Uuid::nil());
    let retired = Retired { name: name.to_string(), reason: reason.to_string(), source: source.to_string() };
    let event = NewEvent::new(RETIRED, actor, "RETIRED", correlation(name))
        .with_payload(serde_json::to_value(&retired).unwrap_or_default())
        .with_id(derived_event_id(previous, "retire"));
    append_change(store, name, event).await?;
    registry.catch_up(store).await?;
    Ok(())
}

async fn append_change(store: &Store, name: &str, event: NewEvent) -> Result<(), PublishError> {
    let version = store.lifecycle_version(&correlation(name)).await?;
    match store.append(Append::one(event).expecting(correlation(name), ExpectedVersion::Lifecycle(version))).await {
        Ok(_) => Ok(()),
        Err(StoreError::VersionConflict { .. }) => Err(PublishError::Conflict(name.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// The request as part of a publication's derived id: replicas publishing the
/// same component with the same request derive the same event.
fn limits_key(r: &LimitsRequest) -> String {
    let part = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    format!(
        "{}/{}/{}/{}",
        part(r.deadline_ms),
        part(r.memory_mib),
        part(r.component_mib),
        part(r.core_instances.map(u64::from))
    )
}

/// The correlation id of every change to one policy: its history is one story.
pub fn correlation(name: &str) -> String {
    format!("policy:{name}")
}
