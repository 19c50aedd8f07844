//! Tidy checks over the source tree: rules a reviewer would otherwise have to
//! remember.

use std::path::{Path, PathBuf};

/// The stages of an action, as type names end.
const STAGES: [&str; 8] = [
    "Proposed",
    "Approved",
    "Rejected",
    "Escalated",
    "ExecutionStarted",
    "Executed",
    "ExecutionFailed",
    "ExecutionSkipped",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "tests" || n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Non-test Rust sources of the services, the core and the binary.
fn sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["core/src", "src", "services"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 30, "the tidy check found only {} files", files.len());
    files
}

/// The code before its `#[cfg(test)]` module.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// No service decides anything by matching an event type's suffix: a role that may
/// append "anything ending in X" could forge a decision that way. Types are parsed
/// into the closed set (`bookkeeper_core::lifecycle`) and the action's story is
/// folded (`ActionState::fold`).
#[test]
fn no_event_type_is_matched_by_its_suffix() {
    let mut found = Vec::new();
    for path in sources() {
        let code = code(&path);
        for (n, line) in code.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for stage in STAGES {
                for how in ["ends_with", "strip_suffix", "trim_end_matches"] {
                    if line.contains(&format!("{how}(\"{stage}\")")) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
                // A decision or an outcome recognised by a SQL pattern.
                if stage != "Proposed" && line.contains(&format!("LIKE '%{stage}'")) {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
                // A subscription following a pattern of types instead of the closed set.
                if line.contains(&format!("\"*{stage}\"")) {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "event types matched by suffix (parse them with EventType::parse, fold the story with ActionState::fold):\n{}",
        found.join("\n")
    );
}

/// The migrations from the trust change on (PostgreSQL 0007, SQLite 0004) never name
/// a pattern of types: not in row-level security, not in a view, not in a trigger.
#[test]
fn migrations_name_exact_types() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut checked = 0;
    for (backend, first) in [("postgres", 7), ("sqlite", 4)] {
        for entry in std::fs::read_dir(root.join(backend)).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let number: u32 = name[..4].parse().unwrap();
            if number < first {
                continue; // shipped before; never edited, replaced since
            }
            let sql = std::fs::read_to_string(entry.path()).unwrap();
            for (n, line) in sql.lines().enumerate() {
                assert!(!line.contains("type LIKE"), "{backend}/{name}:{}: a pattern on a type: {line}", n + 1);
            }
            checked += 1;
        }
    }
    assert!(checked >= 2);
}
