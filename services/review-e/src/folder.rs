//! The watched policy folder: dropping, replacing or removing a `.wasm` file
//! publishes, replaces or retires that policy. A file named `*.shadow.wasm` is
//! published in shadow mode. A `<name>.limits.json` beside it asks for the limits
//! it runs under (see `LimitsRequest`); changing that file republishes it.
//!
//! File-system notifications trigger a rescan at once; a periodic rescan catches
//! whatever a notification missed (network volumes, ConfigMap symlink swaps).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bookkeeper_core::event::actor;
use bookkeeper_core::Store;
use notify::{RecursiveMode, Watcher};

use crate::policy::{LimitsRequest, Mode, PolicyEngine};
use crate::publish::{publish, retire, PublishError};
use crate::registry::Registry;

/// Watches `dir` until `shutdown`.
pub async fn watch(dir: PathBuf, store: Store, registry: Registry, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let watcher = notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
        let _ = tx.try_send(());
    })
    .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
    let _watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the policy folder; rescanning every 2 s");
            None
        }
    };
    let mut refused = HashSet::new();
    loop {
        if let Err(e) = rescan(&dir, &store, &registry, &mut refused).await {
            tracing::warn!(dir = %dir.display(), error = %e, "policy folder scan failed");
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = rx.recv() => tokio::time::sleep(Duration::from_millis(100)).await, // let the writer finish
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// Brings the active set in line with the folder once.
pub async fn rescan(
    dir: &Path,
    store: &Store,
    registry: &Registry,
    refused: &mut HashSet<String>,
) -> anyhow::Result<()> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()).map(str::to_string) else { continue };
        if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
            files.insert(file, path);
        }
    }
    registry.catch_up(store).await?;
    for (file, path) in &files {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(file, error = %e, "cannot read policy file");
                continue;
            }
        };
        let digest = PolicyEngine::digest(&bytes);
        let mode = if file.ends_with(".shadow.wasm") { Mode::Shadow } else { Mode::Enforcing };
        let source = format!("folder:{file}");
        // The limits its author asks for, in `<name>.limits.json` beside it
        // (`x.wasm` and `x.shadow.wasm` both read `x.limits.json`).
        let limits_path = limits_file_of(path);
        let request = match read_limits(&limits_path) {
            Ok(request) => request,
            Err(e) => {
                let key = format!("{digest}:{}", limits_path.display());
                if refused.insert(key) {
                    tracing::error!(file, limits = %limits_path.display(), error = %e,
                        "policy file refused: its limits file cannot be read; the active set is unchanged");
                }
                continue;
            }
        };
        // Unchanged means the same component, mode and request: what a replica
        // grants for it depends on its own defaults, and two replicas with
        // different ones must not republish to each other.
        let active = registry.current();
        let unchanged = active.provenance.values().any(|p| {
            p.published.source == source
                && p.published.digest == digest
                && p.published.mode == mode
                && p.published.request() == request
        });
        let attempt = format!("{digest}:{request:?}");
        if unchanged || refused.contains(&attempt) {
            continue;
        }
        match publish(store, registry, bytes, mode, request, actor::REVIEW_E, &source).await {
            Ok(p) => tracing::info!(file, policy = %p.name, version = %p.version, "published from the policy folder"),
            Err(e) => {
                tracing::error!(file, error = %e, "policy file refused; the active set is unchanged");
                refused.insert(attempt);
            }
        }
    }
    let gone: Vec<String> = registry
        .current()
        .provenance
        .values()
        .filter_map(|p| {
            let file = p.published.source.strip_prefix("folder:")?;
            (!files.contains_key(file)).then(|| p.published.name.clone())
        })
        .collect();
    for name in gone {
        retire(store, registry, &name, actor::REVIEW_E, "folder", "its file was removed from the policy folder")
            .await?;
        tracing::info!(policy = %name, "retired: its file was removed");
    }
    Ok(())
}

/// `<dir>/x.limits.json` for `<dir>/x.wasm` and `<dir>/x.shadow.wasm`.
pub fn limits_file_of(component: &Path) -> PathBuf {
    let stem = component.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let stem = stem.strip_suffix(".shadow").unwrap_or(stem);
    component.with_file_name(format!("{stem}.limits.json"))
}

/// The limits file's request; none asked for when there is no file.
fn read_limits(path: &Path) -> Result<LimitsRequest, PublishError> {
    match std::fs::read(path) {
        Ok(bytes) => LimitsRequest::parse(&bytes).map_err(|e| PublishError::Invalid(e.into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LimitsRequest::default()),
        Err(e) => Err(PublishError::Invalid(crate::policy::LoadError::Limits(crate::policy::LimitsError::Unreadable(
            format!("{}: {e}", path.display()),
        )))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_and_its_shadow_share_one_limits_file() {
        assert_eq!(limits_file_of(Path::new("/p/small.wasm")), Path::new("/p/small.limits.json"));
        assert_eq!(limits_file_of(Path::new("/p/small.shadow.wasm")), Path::new("/p/small.limits.json"));
    }
}
