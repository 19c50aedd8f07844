//! Python policies, built with componentize-py (which bundles CPython).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{installed, run, BuildError};

/// The file a Python policy project is recognised by: it defines the policy.
pub const ENTRY: &str = "policy.py";
/// The componentize-py release policies are built with.
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// The pytest release the native tests run under.
pub const PYTEST: &str = "9.2.0";

/// The project's generated bindings (the contract's types as Python classes),
/// made afresh for every build and test, never committed.
pub const BINDINGS: &str = ".bookkeeper/bindings";

const HINT: &str = "Python policies need Python 3.11 or newer with venv (Debian: apt-get install python3 python3-venv)";

/// Every package of the toolchain, pinned by version and hash.
const REQUIREMENTS: &str = include_str!("lock/python-requirements.txt");

/// What builds a Python policy: a build by another is not reused.
pub(crate) const TOOLCHAIN_ID: &str = REQUIREMENTS;

/// The virtual environment holding componentize-py and pytest, installed on
/// first use.
pub fn toolchain() -> Result<PathBuf, BuildError> {
    let python = std::env::var("BOOKKEEPER_PYTHON").unwrap_or_else(|_| "python3".into());
    if run(Command::new(&python).arg("--version")).is_err() {
        return Err(BuildError::MissingProgram { program: "python3", hint: HINT });
    }
    // The hashes pinned are of packages for 3.11 and newer (older ones need more).
    if run(Command::new(&python).args(["-c", "import sys; sys.exit(sys.version_info < (3, 11))"])).is_err() {
        return Err(BuildError::TooOld { program: "python3", hint: HINT });
    }
    let dir = super::toolchains_home()?
        .join(format!("python-componentize-py-{COMPONENTIZE_PY}-{}", super::lock_digest(&[REQUIREMENTS])));
    installed(&dir, &format!("componentize-py {COMPONENTIZE_PY} and pytest {PYTEST}"), |d| {
        run(Command::new(&python).args(["-m", "venv"]).arg(d))?;
        let requirements = d.join("requirements.txt");
        std::fs::write(&requirements, REQUIREMENTS).map_err(|e| e.to_string())?;
        // --require-hashes: a package whose file differs from the pinned hash,
        // or one not pinned at all, fails the install. --only-binary: never
        // build from source, whose build dependencies pip would not check.
        run(Command::new(d.join("bin/python"))
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--require-hashes"])
            .args(["--only-binary=:all:", "-r"])
            .arg(&requirements))
        .map(drop)
    })?;
    Ok(dir)
}

fn wit_of(dir: &Path) -> Result<PathBuf, BuildError> {
    let wit = dir.join("wit");
    if !wit.join("policy.wit").is_file() {
        return Err(BuildError::Componentize {
            path: wit,
            reason: "the project has no wit/policy.wit (the contract it is written against); `policy new` makes one"
                .into(),
        });
    }
    Ok(wit)
}

/// Generates the contract's Python classes into `<dir>/.bookkeeper/bindings`.
fn bindings(dir: &Path, venv: &Path) -> Result<(), BuildError> {
    let out = dir.join(BINDINGS);
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(BuildError::io(&out))?;
    }
    let wit = wit_of(dir)?;
    run(Command::new(venv.join("bin/componentize-py"))
        .arg("-d")
        .arg(&wit)
        .args(["-w", "policy", "bindings"])
        .arg(&out))
    .map_err(|output| BuildError::Tool { tool: "componentize-py bindings", output })?;
    Ok(())
}

/// Builds the Python policy in `dir` into a component that imports nothing.
pub fn build(dir: &Path) -> Result<Vec<u8>, BuildError> {
    // Absolute: the compiler runs inside the project.
    let dir = &dir.canonicalize().map_err(BuildError::io(dir))?;
    let venv = toolchain()?;
    let wit = wit_of(dir)?;
    let out = dir.join(".bookkeeper/policy.wasm");
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(BuildError::io(parent))?;
    }
    run(Command::new(venv.join("bin/componentize-py"))
        .current_dir(dir)
        .arg("-d")
        .arg(&wit)
        .args(["-w", "policy", "componentize", "--stub-wasi", "-p", ".", "policy", "-o"])
        .arg(&out))
    .map_err(|output| BuildError::Tool { tool: "componentize-py", output })?;
    std::fs::read(&out).map_err(BuildError::io(&out))
}

/// Runs the project's pytest tests against its source.
pub fn test(dir: &Path) -> Result<String, BuildError> {
    let dir = &dir.canonicalize().map_err(BuildError::io(dir))?;
    let venv = toolchain()?;
    bindings(dir, &venv)?;
    run(Command::new(venv.join("bin/python"))
        .current_dir(dir)
        .env("PYTHONPATH", BINDINGS)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"]))
    .map_err(|output| BuildError::NativeTests { runner: "pytest", output })
}
