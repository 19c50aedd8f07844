//! The watched policy folder: dropping, replacing or removing a `.wasm` file
//! publishes, replaces or retires that policy. A file named `*.shadow.wasm` is
//! published in shadow mode.
//!
//! File-system notifications trigger a rescan at once; a periodic rescan catches
//! whatever a notification missed (network volumes, ConfigMap symlink swaps).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bookkeeper_core::event::actor;
use bookkeeper_core::Store;
use notify::{RecursiveMode, Watcher};

use crate::policy::{Mode, PolicyEngine};
use crate::publish::{publish, retire};
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
        if file.ends_with(".wasm") && path.is_file() {
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
        let active = registry.current();
        let unchanged = active
            .provenance
            .values()
            .any(|p| p.published.source == source && p.published.digest == digest && p.published.mode == mode);
        if unchanged || refused.contains(&digest) {
            continue;
        }
        match publish(store, registry, bytes, mode, actor::REVIEW_E, &source).await {
            Ok(p) => tracing::info!(file, policy = %p.name, version = %p.version, "published from the policy folder"),
            Err(e) => {
                tracing::error!(file, error = %e, "policy file refused; the active set is unchanged");
                refused.insert(digest);
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
