//! JavaScript policies, built with componentize-js (which bundles StarlingMonkey).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{installed, run, BuildError};

/// The file a JavaScript policy project is recognised by: it defines the policy.
pub const ENTRY: &str = "policy.js";
/// The componentize-js release policies are built with.
pub const COMPONENTIZE_JS: &str = "0.23.0";

const HINT: &str = "JavaScript policies need Node.js 20 or newer with npm (Debian: apt-get install nodejs npm)";

/// The toolchain's package, and its lock: every package's version and
/// integrity hash, which `npm ci` checks.
const PACKAGE: &str = include_str!("lock/js-package.json");
const PACKAGE_LOCK: &str = include_str!("lock/js-package-lock.json");

/// What builds a JavaScript policy: a build by another is not reused.
pub(crate) const TOOLCHAIN_ID: &str = PACKAGE_LOCK;

/// Every WASI feature componentize-js can leave out: all of them, so the
/// component imports nothing. (Its AOT option fetches a binary at build time,
/// so it is not used.)
const DISABLED: [&str; 5] = ["stdio", "random", "clocks", "http", "fetch-event"];

/// The npm prefix holding componentize-js, installed on first use.
pub fn toolchain() -> Result<PathBuf, BuildError> {
    for program in ["node", "npm"] {
        if run(Command::new(program).arg("--version")).is_err() {
            return Err(BuildError::MissingProgram { program, hint: HINT });
        }
    }
    let dir = super::toolchains_home()?
        .join(format!("js-componentize-js-{COMPONENTIZE_JS}-{}", super::lock_digest(&[PACKAGE, PACKAGE_LOCK])));
    installed(&dir, &format!("componentize-js {COMPONENTIZE_JS}"), |d| {
        std::fs::write(d.join("package.json"), PACKAGE).map_err(|e| e.to_string())?;
        std::fs::write(d.join("package-lock.json"), PACKAGE_LOCK).map_err(|e| e.to_string())?;
        // `npm ci` installs exactly the lock, checking every integrity hash,
        // and fails rather than resolve anything anew.
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"]).arg(d))
            .map(drop)
    })?;
    Ok(dir)
}

/// Builds the JavaScript policy in `dir` into a component that imports nothing.
pub fn build(dir: &Path) -> Result<Vec<u8>, BuildError> {
    // Absolute: the compiler runs inside the project.
    let dir = &dir.canonicalize().map_err(BuildError::io(dir))?;
    let prefix = toolchain()?;
    let wit = dir.join("wit");
    if !wit.join("policy.wit").is_file() {
        return Err(BuildError::Componentize {
            path: wit,
            reason: "the project has no wit/policy.wit (the contract it is written against); `policy new` makes one"
                .into(),
        });
    }
    let out = dir.join(".bookkeeper/policy.wasm");
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(BuildError::io(parent))?;
    }
    run(Command::new(prefix.join("node_modules/.bin/componentize-js"))
        .current_dir(dir)
        .arg(ENTRY)
        .arg("-w")
        .arg(&wit)
        .args(["-n", "policy", "-d"])
        .args(DISABLED)
        .arg("-o")
        .arg(&out))
    .map_err(|output| BuildError::Tool { tool: "componentize-js", output })?;
    std::fs::read(&out).map_err(BuildError::io(&out))
}

/// Runs the project's tests with node's test runner, against its source.
pub fn test(dir: &Path) -> Result<String, BuildError> {
    let dir = &dir.canonicalize().map_err(BuildError::io(dir))?;
    if run(Command::new("node").arg("--version")).is_err() {
        return Err(BuildError::MissingProgram { program: "node", hint: HINT });
    }
    run(Command::new("node").current_dir(dir).args(["--test", "policy.test.js"]))
        .map_err(|output| BuildError::NativeTests { runner: "node --test", output })
}
