//! Showing a receipt or invoice without trusting it: PDF pages become PNG images
//! made by poppler's `pdftoppm` in a child process with a deadline (the browser
//! never opens the PDF itself, so nothing in it can run on the desk's origin);
//! PNG and JPEG are served as images under a policy that lets nothing run; HEIC
//! and anything else is offered as a download.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

/// A document's pages, rendered.
pub type Pages = Arc<Vec<Vec<u8>>>;

/// The most pages of one PDF shown.
pub const MAX_PAGES: usize = 10;

/// How long one rendering may take.
const DEADLINE: Duration = Duration::from_secs(20);

/// Documents whose pages (or whose failure) are kept.
const CACHED_DOCUMENTS: usize = 16;

/// The longest side of a rendered page, in pixels: a page declared a few metres
/// wide cannot make a bitmap of gigabytes.
const MAX_SIDE_PIXELS: &str = "1600";

/// The most bytes of rendered pages read for one document.
const MAX_RENDERED_BYTES: u64 = 32 * 1024 * 1024;

/// Why a PDF could not be shown. The reviewer can still download it.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum RenderError {
    /// pdftoppm is not installed (or not where `REVIEW_E_DESK_PDFTOPPM` says).
    #[error("PDF pages cannot be shown here (pdftoppm is not available); download the document instead")]
    Unavailable,
    /// It took too long.
    #[error("the PDF took too long to render; download it instead")]
    TimedOut,
    /// pdftoppm could not read it.
    #[error("the PDF could not be rendered; download it instead")]
    Failed,
    /// This machine has no scratch space to render in (not the document's fault).
    #[error("PDF pages cannot be shown here (no writable temporary folder); download the document instead")]
    NoScratch,
}

/// Renders PDF pages, a few at a time, and keeps the last few documents' pages.
pub struct Renderer {
    program: PathBuf,
    running: Semaphore,
    cache: Mutex<VecDeque<(String, Result<Pages, RenderError>)>>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer").field("program", &self.program).finish()
    }
}

impl Renderer {
    /// A renderer running `program` (normally `pdftoppm`). Marks this process
    /// not dumpable, so the renderer (same user) cannot read its memory or its
    /// environment (`/proc/<pid>/environ`: the database URL, the desk's key).
    pub fn new(program: impl Into<PathBuf>) -> Renderer {
        // SAFETY: prctl with these arguments only changes this process's flag.
        unsafe {
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        }
        Renderer { program: program.into(), running: Semaphore::new(2), cache: Mutex::new(VecDeque::new()) }
    }

    /// The pages of the PDF `bytes` (content hash `sha256`) as PNG images, the
    /// first [`MAX_PAGES`] of them. A failure is kept like a success, so a PDF
    /// made to be slow costs one deadline, not one per view.
    pub async fn pages(&self, sha256: &str, bytes: &[u8]) -> Result<Pages, RenderError> {
        if let Some(found) = self.cached(sha256) {
            return found;
        }
        let _turn = self.running.acquire().await.map_err(|_| RenderError::Failed)?;
        if let Some(found) = self.cached(sha256) {
            return found;
        }
        let rendered = self.render(bytes).await.map(Arc::new);
        // Not installed, or nowhere to write, is this machine's state, not the
        // document's: tried again next time.
        if !matches!(rendered, Err(RenderError::Unavailable | RenderError::NoScratch)) {
            if let Ok(mut cache) = self.cache.lock() {
                cache.push_back((sha256.to_string(), rendered.clone()));
                while cache.len() > CACHED_DOCUMENTS {
                    cache.pop_front();
                }
            }
        }
        rendered
    }

    fn cached(&self, sha256: &str) -> Option<Result<Pages, RenderError>> {
        let cache = self.cache.lock().ok()?;
        cache.iter().find(|(s, _)| s == sha256).map(|(_, p)| p.clone())
    }

    async fn render(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, RenderError> {
        let dir = Scratch::new().map_err(|_| RenderError::NoScratch)?;
        self.render_in(&dir.0, bytes).await
    }

    async fn render_in(&self, dir: &std::path::Path, bytes: &[u8]) -> Result<Vec<Vec<u8>>, RenderError> {
        let input = dir.join("document.pdf");
        tokio::fs::write(&input, bytes).await.map_err(|_| RenderError::Failed)?;
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(["-png", "-scale-to", MAX_SIDE_PIXELS, "-f", "1", "-l", &MAX_PAGES.to_string()])
            .arg(&input)
            .arg(dir.join("page"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // A parser of what a requester uploaded: it gets none of Review-E's
            // secrets (the database URL, the desk's key) through its environment.
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .kill_on_drop(true);
        // Bounded in memory, CPU and output, so a PDF made to exhaust them ends
        // the renderer, not Review-E's container.
        // SAFETY: only setrlimit, async-signal-safe, runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                for (resource, value) in
                    [(libc::RLIMIT_AS, 1 << 30), (libc::RLIMIT_CPU, 30), (libc::RLIMIT_FSIZE, 64 << 20)]
                {
                    let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
                    if libc::setrlimit(resource, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => RenderError::Unavailable,
            _ => RenderError::Failed,
        })?;
        let status = match tokio::time::timeout(DEADLINE, child.wait_with_output()).await {
            Err(_) => return Err(RenderError::TimedOut),
            Ok(Err(_)) => return Err(RenderError::Failed),
            Ok(Ok(output)) => output.status,
        };
        if !status.success() {
            return Err(RenderError::Failed);
        }
        // `page-1.png`, or `page-01.png` with ten or more pages: by the number.
        let mut pages: Vec<(u32, PathBuf)> = Vec::new();
        let mut entries = tokio::fs::read_dir(dir).await.map_err(|_| RenderError::Failed)?;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().to_string();
            let number = name.strip_prefix("page-").and_then(|n| n.strip_suffix(".png")).and_then(|n| n.parse().ok());
            if let Some(n) = number {
                pages.push((n, entry.path()));
            }
        }
        pages.sort();
        let mut out = Vec::new();
        let mut total = 0u64;
        for (_, path) in pages {
            total += tokio::fs::metadata(&path).await.map(|m| m.len()).map_err(|_| RenderError::Failed)?;
            if total > MAX_RENDERED_BYTES {
                break;
            }
            out.push(tokio::fs::read(path).await.map_err(|_| RenderError::Failed)?);
        }
        if out.is_empty() {
            return Err(RenderError::Failed);
        }
        Ok(out)
    }
}

/// A private scratch folder (mode 0700), removed when dropped: also when the
/// request that made it is cancelled half-way.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("bookkeeper-desk-{}", uuid::Uuid::new_v4().simple()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
