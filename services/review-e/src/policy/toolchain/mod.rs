//! Building a policy into a component, in the language it is written in.
//!
//! - **Rust** ([`rust`]): `cargo build` for `wasm32-unknown-unknown`, wrapped by
//!   `wit-component`. The smallest and fastest components.
//! - **Python** ([`python`]): componentize-py, which bundles CPython, with WASI
//!   stubbed out (`--stub-wasi`), so the component still imports nothing.
//! - **JavaScript** ([`js`]): componentize-js, which bundles StarlingMonkey, with
//!   every WASI feature disabled.
//!
//! The Python and JavaScript toolchains are installed on first use into a local
//! environment of their own (see [`toolchains_home`]), at pinned versions, from
//! PyPI and npm; python3 or node must be on the machine.

use std::path::{Path, PathBuf};

use super::LimitsRequest;

pub mod js;
pub mod python;
mod rust;

pub use rust::{build, componentize, STACK_BYTES, TARGET};

/// The language a policy project is written in, from the files it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// `Cargo.toml`.
    Rust,
    /// `policy.py`.
    Python,
    /// `policy.js`.
    JavaScript,
}

impl Language {
    /// Every language, as `policy new --lang` names them.
    pub const ALL: [Language; 3] = [Language::Rust, Language::Python, Language::JavaScript];

    /// `rust`, `python`, `js`.
    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::JavaScript => "js",
        }
    }

    /// The language called `name` (`rust`, `python` or `py`, `js` or `javascript`).
    pub fn parse(name: &str) -> Option<Language> {
        match name.trim().to_ascii_lowercase().as_str() {
            "rust" | "rs" => Some(Language::Rust),
            "python" | "py" => Some(Language::Python),
            "js" | "javascript" => Some(Language::JavaScript),
            _ => None,
        }
    }

    /// The language of the project in `dir`, by the file that defines it.
    pub fn of_project(dir: &Path) -> Result<Language, BuildError> {
        let found: Vec<Language> =
            [(Language::Rust, "Cargo.toml"), (Language::Python, python::ENTRY), (Language::JavaScript, js::ENTRY)]
                .into_iter()
                .filter(|(_, file)| dir.join(file).is_file())
                .map(|(language, _)| language)
                .collect();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(BuildError::NotAPolicy(dir.to_path_buf())),
            _ => Err(BuildError::Ambiguous(dir.to_path_buf())),
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `cargo` could not be run at all.
    #[error("could not run cargo: {0}")]
    Cargo(std::io::Error),
    /// The crate did not compile; cargo's own output says why.
    #[error("cargo build failed:\n{0}")]
    Compile(String),
    /// The target is missing from the toolchain.
    #[error("the {TARGET} target is not installed; run `rustup target add {TARGET}`")]
    MissingTarget,
    /// Cargo built no `cdylib`.
    #[error("the crate at {0} produced no .wasm library; is `crate-type = [\"cdylib\"]` set under [lib]?")]
    NoArtifact(PathBuf),
    /// The module could not be made a component (no bindings, wrong contract...).
    #[error("could not make a component of {path}: {reason}")]
    Componentize { path: PathBuf, reason: String },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No policy project is there.
    #[error("{0} is not a policy project: it has no Cargo.toml, policy.py or policy.js")]
    NotAPolicy(PathBuf),
    /// More than one language's entry file is there.
    #[error("{0} has more than one of Cargo.toml, policy.py and policy.js; keep the one the policy is written in")]
    Ambiguous(PathBuf),
    /// A program the language needs is not on this machine.
    #[error("{program} is not installed (or not on PATH): {hint}")]
    MissingProgram { program: &'static str, hint: &'static str },
    /// The program is there but older than the toolchain needs.
    #[error("{program} is too old: {hint}")]
    TooOld { program: &'static str, hint: &'static str },
    /// Installing the language's toolchain failed.
    #[error("installing {what} into {dir} failed:\n{output}")]
    Install { what: String, dir: PathBuf, output: String },
    /// The language's compiler refused the policy; its output says why.
    #[error("{tool} failed:\n{output}")]
    Tool { tool: &'static str, output: String },
    /// The policy's own tests failed; their output says which.
    #[error("the native tests failed ({runner}):\n{output}")]
    NativeTests { runner: &'static str, output: String },
    /// Neither `BOOKKEEPER_POLICY_TOOLCHAINS` nor a home folder says where to
    /// install the Python and JavaScript toolchains.
    #[error("nowhere to install the policy toolchains: set BOOKKEEPER_POLICY_TOOLCHAINS (or HOME) to a folder only you can write")]
    NoToolchainHome,
    /// The project's limits file cannot be read.
    #[error("{path}: {reason}")]
    Limits { path: PathBuf, reason: String },
}

impl BuildError {
    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
        move |source| BuildError::Io { path: path.to_path_buf(), source }
    }
}

/// A built policy: the component and the limits its project asks for.
#[derive(Debug, Clone)]
pub struct Built {
    /// The component.
    pub component: Vec<u8>,
    /// The language it was written in.
    pub language: Language,
    /// What the project's `limits.json` asks for (nothing when it has none).
    pub limits: LimitsRequest,
}

/// The file in a policy project that asks for the limits it runs under; `policy
/// build` writes it beside the component as `<name>.limits.json`.
pub const LIMITS_FILE: &str = "limits.json";

/// Builds the policy project in `dir`, whatever its language.
pub fn build_project(dir: &Path) -> Result<Built, BuildError> {
    let language = Language::of_project(dir)?;
    let component = match language {
        Language::Rust => rust::build(dir, &[])?,
        Language::Python => unless_unchanged(dir, python::TOOLCHAIN_ID, python::build)?,
        Language::JavaScript => unless_unchanged(dir, js::TOOLCHAIN_ID, js::build)?,
    };
    Ok(Built { component, language, limits: project_limits(dir)? })
}

/// The component the last build of `dir` made, if nothing it was made from has
/// changed since; else `build`'s. componentize-py and componentize-js do not
/// make the same bytes twice, so without this every `policy test` would have a
/// new digest, and compile (10-15 s) what it compiled a minute ago.
fn unless_unchanged(
    dir: &Path,
    toolchain: &str,
    build: impl FnOnce(&Path) -> Result<Vec<u8>, BuildError>,
) -> Result<Vec<u8>, BuildError> {
    let out = dir.join(".bookkeeper/policy.wasm");
    let stamp = dir.join(".bookkeeper/policy.wasm.inputs");
    let inputs = inputs_digest(dir, toolchain).map_err(BuildError::io(dir))?;
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == inputs) {
        if let Ok(bytes) = std::fs::read(&out) {
            return Ok(bytes);
        }
    }
    std::fs::remove_file(&stamp).ok();
    let bytes = build(dir)?;
    std::fs::write(&stamp, &inputs).map_err(BuildError::io(&stamp))?;
    Ok(bytes)
}

/// SHA-256 over every file of the project (names and contents, sorted) and the
/// toolchain that builds it; hidden folders (`.bookkeeper`, `.git`, caches),
/// `node_modules`, `__pycache__` and built components left out.
fn inputs_digest(dir: &Path, toolchain: &str) -> std::io::Result<String> {
    use sha2::Digest as _;
    fn walk(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "node_modules" || name == "__pycache__" || name.ends_with(".wasm") {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                if files.len() < 10_000 {
                    walk(root, &path, files)?;
                }
            } else {
                files.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    let mut hasher = sha2::Sha256::new();
    hasher.update(toolchain.as_bytes());
    for file in &files {
        let bytes = std::fs::read(dir.join(file))?;
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs the project's own tests in its language (pytest, node's test runner,
/// `cargo test`), against its source rather than its component.
pub fn native_test(dir: &Path) -> Result<String, BuildError> {
    match Language::of_project(dir)? {
        Language::Rust => rust::test(dir),
        Language::Python => python::test(dir),
        Language::JavaScript => js::test(dir),
    }
}

/// What `dir/limits.json` asks for; nothing when there is no such file.
pub fn project_limits(dir: &Path) -> Result<LimitsRequest, BuildError> {
    let path = dir.join(LIMITS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => LimitsRequest::parse(&bytes).map_err(|e| BuildError::Limits { path, reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LimitsRequest::default()),
        Err(source) => Err(BuildError::Io { path, source }),
    }
}

/// Where the Python and JavaScript toolchains are installed:
/// `BOOKKEEPER_POLICY_TOOLCHAINS`, else `$XDG_CACHE_HOME/bookkeeper/toolchains`,
/// else `~/.cache/bookkeeper/toolchains`; always absolute (the compilers run
/// inside the project). Never a shared temporary folder: whoever can write
/// there could plant a "finished" installation that then runs as you.
pub fn toolchains_home() -> Result<PathBuf, BuildError> {
    let chosen = cache_folder("BOOKKEEPER_POLICY_TOOLCHAINS", "toolchains").ok_or(BuildError::NoToolchainHome)?;
    std::path::absolute(&chosen).map_err(BuildError::io(&chosen))
}

/// Where `policy build` and `policy test` keep compiled components (see
/// [`DiskCache`](super::DiskCache)): `BOOKKEEPER_POLICY_COMPILE_CACHE`, else
/// `$XDG_CACHE_HOME/bookkeeper/compiled`, else `~/.cache/bookkeeper/compiled`;
/// `off` (or no home at all): none, every run compiles.
pub fn compile_cache_home() -> Option<PathBuf> {
    if std::env::var("BOOKKEEPER_POLICY_COMPILE_CACHE").is_ok_and(|v| v.trim().eq_ignore_ascii_case("off")) {
        return None;
    }
    let chosen = cache_folder("BOOKKEEPER_POLICY_COMPILE_CACHE", "compiled")?;
    std::path::absolute(chosen).ok()
}

/// `var` if set, else `<user cache>/bookkeeper/<name>`.
fn cache_folder(var: &str, name: &str) -> Option<PathBuf> {
    std::env::var_os(var).filter(|d| !d.is_empty()).map(PathBuf::from).or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".cache")))
            .map(|cache| cache.join("bookkeeper").join(name))
    })
}

/// A short digest of a toolchain's lock files: part of its folder's name, so a
/// changed lock installs afresh beside the old one.
pub(crate) fn lock_digest(files: &[&str]) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    for file in files {
        hasher.update(file.as_bytes());
    }
    hasher.finalize().iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Runs `command`, returning its combined output, or the output as the error.
pub(crate) fn run(command: &mut std::process::Command) -> Result<String, String> {
    let output = command.output().map_err(|e| e.to_string())?;
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// A toolchain installed once into `dir`: `install` runs only when `dir` holds
/// no finished installation, into a fresh directory, and the marker written
/// last says it finished (an interrupted install is redone, not used).
pub(crate) fn installed(
    dir: &Path,
    what: &str,
    install: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), BuildError> {
    let marker = dir.join(".installed");
    if marker.is_file() {
        return Ok(());
    }
    // Two builds at once (a test run beside CI's loop, two terminals) must not
    // install over each other: the second waits, then finds it done.
    let parent = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(BuildError::io(parent))?;
    let lock_path = dir.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(BuildError::io(&lock_path))?;
    let _held = Flock::exclusive(&lock).map_err(BuildError::io(&lock_path))?;
    if marker.is_file() {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(BuildError::io(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(BuildError::io(dir))?;
    eprintln!("installing {what} into {} (once) ...", dir.display());
    install(dir).map_err(|output| BuildError::Install { what: what.to_string(), dir: dir.to_path_buf(), output })?;
    std::fs::write(&marker, what).map_err(BuildError::io(&marker))?;
    Ok(())
}

/// An exclusive `flock` on a file, released when dropped (or the process ends).
struct Flock<'a>(&'a std::fs::File);

impl<'a> Flock<'a> {
    fn exclusive(file: &'a std::fs::File) -> std::io::Result<Flock<'a>> {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this File owns for the guard's lifetime.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Flock(file))
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as above; unlocking a lock this guard took.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The WIT contract of the newest version, for projects that carry their own
/// copy (`wit/policy.wit`), so a project keeps the version it was made for.
pub const CONTRACT_WIT: &str = include_str!("../../../../../policy-sdk/wit/policy.wit");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_is_in_exactly_one_language() {
        let dir = std::env::temp_dir().join(format!("bk-lang-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(Language::of_project(&dir), Err(BuildError::NotAPolicy(_))));
        std::fs::write(dir.join("policy.py"), "").unwrap();
        assert_eq!(Language::of_project(&dir).unwrap(), Language::Python);
        std::fs::write(dir.join("policy.js"), "").unwrap();
        assert!(matches!(Language::of_project(&dir), Err(BuildError::Ambiguous(_))));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(Language::parse("Python"), Some(Language::Python));
        assert_eq!(Language::parse("go"), None);
    }
}
