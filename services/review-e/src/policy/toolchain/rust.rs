//! Building a Rust policy crate into a component: `cargo build` for
//! `wasm32-unknown-unknown`, then wrapping the core module as a component with
//! `wit-component`. The result imports nothing: unlike `wasm32-wasip2`, this target
//! links no WASI, so the component has no way to ask for a clock or a file.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::BuildError;

/// The compilation target policies are built for.
pub const TARGET: &str = "wasm32-unknown-unknown";

/// The stack a policy gets, in bytes.
pub const STACK_BYTES: usize = 64 * 1024;

/// Builds the policy crate in `dir` (with extra cargo `features`) and returns the
/// component's bytes.
pub fn build(dir: &Path, features: &[&str]) -> Result<Vec<u8>, BuildError> {
    let manifest = dir.join("Cargo.toml");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .args(["build", "--release", "--target", TARGET, "--message-format=json-render-diagnostics", "--manifest-path"])
        .arg(&manifest)
        // A 64 KiB stack instead of Rust's default 1 MiB: a policy's initial memory
        // shrinks from 17 pages to a few, which makes every fresh instance cheaper
        // to set up and to reset. Deep recursion still traps cleanly.
        .args(["--config", &format!("target.{TARGET}.rustflags=[\"-C\", \"link-arg=-zstack-size={STACK_BYTES}\"]")]);
    if !features.is_empty() {
        cargo.args(["--features", &features.join(",")]);
    }
    let output = cargo.output().map_err(BuildError::Cargo)?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        if stderr.contains("target may not be installed") || stderr.contains("can't find crate for `core`") {
            return Err(BuildError::MissingTarget);
        }
        return Err(BuildError::Compile(stderr.into_owned()));
    }
    let module_path = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| {
            m["reason"] == "compiler-artifact"
                && m["manifest_path"].as_str().map(Path::new) == manifest.canonicalize().ok().as_deref()
        })
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| BuildError::NoArtifact(dir.to_path_buf()))?;
    let module = std::fs::read(&module_path).map_err(|source| BuildError::Io { path: module_path.clone(), source })?;
    componentize(&module).map_err(|reason| BuildError::Componentize { path: module_path, reason })
}

/// Wraps a core module built with the SDK as a component.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>, String> {
    wit_component::ComponentEncoder::default()
        .module(module)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| format!("{e:#}"))
}

/// Runs the crate's own tests (`cargo test`), which check its recorded cases
/// against its Rust code.
pub fn test(dir: &Path) -> Result<String, BuildError> {
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.args(["test", "--quiet", "--manifest-path"]).arg(dir.join("Cargo.toml"));
    super::run(&mut cargo).map_err(|output| BuildError::NativeTests { runner: "cargo test", output })
}
