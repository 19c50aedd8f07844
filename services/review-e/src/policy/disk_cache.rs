//! An author's compile cache: components compiled on this machine, kept on
//! disk by digest so `policy test` and `policy build` compile a large Python or
//! JavaScript policy once (10-15 s), not on every run.
//!
//! A compiled artifact is native code the engine maps without checking it
//! again, so the cache is only used where nobody but this user can write: its
//! folders are made `0700` and its files `0600`, and a folder that is not owned
//! by this user, or that group or others may write, is not used at all. Review-E's own cache is in the
//! database, under its role; this one is for an author's machine.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{Limits, LoadError, Loaded, PolicyEngine};

/// How long a compiled component nobody has loaded is kept.
const KEEP_UNUSED: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why the cache cannot be used (loading still works: it compiles).
#[derive(Debug, thiserror::Error)]
pub enum DiskCacheError {
    /// The folder could not be made or read.
    #[error("the compile cache {path} cannot be used: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Someone else could write there.
    #[error("the compile cache {0} is not used: it must belong to you and be writable by nobody else (chmod 700)")]
    NotPrivate(PathBuf),
}

/// Where a load's compiled code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compilation {
    /// Compiled now (and saved, when a cache was given).
    Compiled,
    /// Read from the cache.
    Cached,
}

/// Compiled components of one engine, one file per component digest.
#[derive(Debug, Clone)]
pub struct DiskCache {
    home: PathBuf,
    dir: PathBuf,
}

impl DiskCache {
    /// The cache under `home` for `engine` (a folder per engine fingerprint,
    /// so another release never reads this one's code).
    pub fn open(home: &Path, engine: &PolicyEngine) -> Result<DiskCache, DiskCacheError> {
        let dir = home.join(engine.fingerprint());
        private_folder(home)?;
        private_folder(&dir)?;
        Ok(DiskCache { home: home.to_path_buf(), dir })
    }

    /// The folder this engine's compiled components are kept in.
    pub fn folder(&self) -> &Path {
        &self.dir
    }

    fn path(&self, digest: &str) -> Option<PathBuf> {
        // Digests are ours (hex of SHA-256); anything else is never a file name.
        (digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| self.dir.join(format!("{digest}.cwasm")))
    }

    /// The compiled component `digest`, if kept (and marks it used).
    pub fn get(&self, digest: &str) -> Option<Vec<u8>> {
        let path = self.path(digest)?;
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || meta.uid() != current_user() || meta.mode() & 0o022 != 0 {
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        if let Ok(file) = std::fs::File::options().append(true).open(&path) {
            file.set_modified(SystemTime::now()).ok();
        }
        Some(bytes)
    }

    /// Keeps `artifact` as the compilation of `digest` (written whole or not
    /// at all), and throws away what has not been used for a month.
    pub fn put(&self, digest: &str, artifact: &[u8]) -> Result<(), DiskCacheError> {
        let Some(path) = self.path(digest) else { return Ok(()) };
        let io = |source| DiskCacheError::Io { path: path.clone(), source };
        // Written beside it and renamed: a reader never sees half a file.
        let temp = self.dir.join(format!(".{digest}.{}.partial", std::process::id()));
        let written = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut file| file.write_all(artifact).and_then(|()| file.sync_all()))
            .and_then(|()| std::fs::rename(&temp, &path));
        if let Err(e) = written {
            std::fs::remove_file(&temp).ok();
            return Err(io(e));
        }
        self.prune(SystemTime::now().checked_sub(KEEP_UNUSED).unwrap_or(SystemTime::UNIX_EPOCH));
        Ok(())
    }

    /// Removes every compiled component, of any engine, not used since `before`.
    fn prune(&self, before: SystemTime) {
        let Ok(engines) = std::fs::read_dir(&self.home) else { return };
        // Only engine folders (named by their fingerprint) and only our files:
        // the folder may have been pointed at somewhere that holds other things.
        let engine_folder = |e: &std::fs::DirEntry| {
            e.file_type().is_ok_and(|t| t.is_dir()) && e.file_name().to_string_lossy().starts_with(FINGERPRINT_PREFIX)
        };
        for engine in engines.flatten().filter(engine_folder) {
            let Ok(files) = std::fs::read_dir(engine.path()) else { continue };
            for file in files.flatten() {
                let old = file.metadata().and_then(|m| m.modified()).is_ok_and(|at| at < before);
                // A `.partial` is what a run that died while writing left behind.
                let ours = file.path().extension().is_some_and(|x| x == "cwasm" || x == "partial");
                if old && ours {
                    std::fs::remove_file(file.path()).ok();
                }
            }
            // Empty engine folders of earlier releases go too (fails if not empty).
            if engine.path() != self.dir {
                std::fs::remove_dir(engine.path()).ok();
            }
        }
    }
}

/// How every engine fingerprint begins (`PolicyEngine::fingerprint`).
const FINGERPRINT_PREFIX: &str = "wasmtime-";

/// Makes `folder` only its owner may enter, or checks that an existing one is
/// ours and that nobody else may write to it: if someone could have, code may
/// already be planted there, and closing it now would be too late.
fn private_folder(folder: &Path) -> Result<(), DiskCacheError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let io = |source| DiskCacheError::Io { path: folder.to_path_buf(), source };
    match std::fs::DirBuilder::new().recursive(true).mode(0o700).create(folder) {
        Ok(()) => {}
        Err(e) => return Err(io(e)),
    }
    let meta = std::fs::symlink_metadata(folder).map_err(io)?;
    if !meta.is_dir() || meta.uid() != current_user() || meta.mode() & 0o022 != 0 {
        return Err(DiskCacheError::NotPrivate(folder.to_path_buf()));
    }
    Ok(())
}

fn current_user() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

impl PolicyEngine {
    /// [`load_limited`](Self::load_limited) through an author's disk cache:
    /// the compilation is read from `cache` when there, and saved when made.
    /// A cache that cannot be written only means compiling next time too.
    pub fn load_cached(
        &self,
        bytes: &[u8],
        limits: Limits,
        cache: Option<&DiskCache>,
    ) -> Result<(Loaded, Compilation), LoadError> {
        let digest = Self::digest(bytes);
        let artifact = cache.and_then(|c| c.get(&digest));
        let loaded = self.load_limited(bytes, limits, artifact.as_deref())?;
        let compilation = match (&loaded.compiled, cache) {
            (Some(artifact), Some(cache)) => {
                if let Err(e) = cache.put(&digest, artifact) {
                    tracing::warn!(error = %e, "compiled, but not cached");
                }
                Compilation::Compiled
            }
            // Not compiled now, and a cached compilation was at hand: it was used.
            (None, _) if artifact.is_some() => Compilation::Cached,
            _ => Compilation::Compiled,
        };
        Ok((loaded, compilation))
    }
}
