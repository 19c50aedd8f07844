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

/// Every Rust source of the shipped code, with the shared HTTP edge.
fn shipped_sources() -> Vec<PathBuf> {
    let mut files = sources();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("core/http/src"), &mut files);
    files
}

/// The names quoted right after `needle` (`settings.text("NAME")`), in `text`.
fn quoted_after<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.match_indices(needle)
        .filter_map(|(i, _)| {
            let rest = text[i + needle.len()..].trim_start();
            let rest = rest.strip_prefix('"')?;
            rest.split('"').next()
        })
        .collect()
}

/// Configuration is read in one place: the settings `main` loads once
/// (`bookkeeper_core::config::Settings`). No other code reads the environment,
/// and every name read is a registered setting, so docs/configuration.md and
/// `bookkeeper config` list everything there is.
#[test]
fn settings_are_read_only_through_the_one_loader_and_all_are_registered() {
    // The policy toolchains run on an author's machine beside cargo, python3 and
    // npm: cargo's own variable, the cache directory (HOME, XDG_CACHE_HOME) and
    // the two registered settings that move them (BOOKKEEPER_POLICY_TOOLCHAINS,
    // BOOKKEEPER_PYTHON), read where the tools are run; the document reader
    // looks up its tools on PATH.
    let allowed = [
        "core/src/config.rs",
        "core/src/testing.rs",
        "services/review-e/src/policy/toolchain/mod.rs",
        "services/review-e/src/policy/toolchain/rust.rs",
        "services/review-e/src/policy/toolchain/python.rs",
        // The document reader finds tesseract and poppler on PATH, as a shell would.
        "core/reader/src/run.rs",
    ];
    let mut stray = Vec::new();
    let mut unregistered = Vec::new();
    for path in shipped_sources() {
        let text = code(&path);
        let shown = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(&path).display().to_string();
        if (text.contains("env::var") || text.contains("try_from_env")) && !allowed.iter().any(|a| shown.ends_with(a)) {
            stray.push(shown.clone());
        }
        for getter in [".text(", ".secret(", ".number(", ".flag(", ".parsed(", ".tokens(", "var: ", "env = "] {
            for name in quoted_after(&text, getter) {
                let looks_like_setting = name.len() > 3 && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
                if looks_like_setting && bookkeeper_core::config::find(name).is_none() {
                    unregistered.push(format!("{shown}: {name}"));
                }
            }
        }
    }
    assert!(stray.is_empty(), "these read the environment themselves; use Settings: {stray:?}");
    assert!(unregistered.is_empty(), "read but not in config::SETTINGS (and so not documented): {unregistered:?}");
}

/// The example policies in Python and JavaScript carry the helpers `policy new`
/// writes, byte for byte: a project is bundled whole into its component (so a
/// copy, not a link), and the examples test what a new project gets.
#[test]
fn the_example_policies_carry_the_scaffolds_helpers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (example, template) in [
        ("policies/small-receipts-python/bookkeeper_policy.py", "src/cli/templates/python/bookkeeper_policy.py"),
        ("policies/small-receipts-js/bookkeeper-policy.js", "src/cli/templates/js/bookkeeper-policy.js"),
        ("policies/duplicate-invoice-js/bookkeeper-policy.js", "src/cli/templates/js/bookkeeper-policy.js"),
    ] {
        let (a, b) = (std::fs::read(root.join(example)).unwrap(), std::fs::read(root.join(template)).unwrap());
        assert!(a == b, "{example} differs from {template}: copy the template over it");
    }
}

/// docs/configuration.md's table is the registry, as `bookkeeper config --markdown` prints it.
#[test]
fn the_configuration_table_in_the_docs_is_the_registry() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md")).unwrap();
    let table = bookkeeper_core::config::Settings::markdown_table();
    assert!(
        doc.contains(&table),
        "docs/configuration.md is out of date: replace its table with `bookkeeper config --markdown`"
    );
}

/// The HTTP edge has one implementation (`core/http`): no service answers its own
/// health probes, reads the bearer header itself or defines its own error body.
#[test]
fn every_service_uses_the_one_http_edge() {
    let mut found = Vec::new();
    for path in sources() {
        let text = code(&path);
        let shown = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(&path).display().to_string();
        // The fakes of Fiken and Folio check bearer tokens as those vendors do.
        if shown.contains("/fake.rs") {
            continue;
        }
        let patterns = [
            "route(\"/healthz\"",
            "route(\"/readyz\"",
            "route(\"/metrics\"",
            "strip_prefix(\"Bearer ",
            "impl IntoResponse for",
        ];
        for pattern in patterns {
            if text.contains(pattern) {
                found.push(format!("{shown}: {pattern}"));
            }
        }
    }
    assert!(found.is_empty(), "use bookkeeper_http (auth, ApiError, Ops) instead: {found:?}");
}

/// The shipped binary finds nothing through the source tree it was built from:
/// the container image has none (the example policies are compiled in).
#[test]
fn the_shipped_code_never_looks_for_its_source_tree() {
    let found: Vec<String> = shipped_sources()
        .into_iter()
        .filter(|p| code(p).contains("CARGO_MANIFEST_DIR"))
        .map(|p| p.display().to_string())
        .collect();
    assert!(found.is_empty(), "these find files through the build's source tree: {found:?}");
}
