//! `bookkeeper policy ...`: scaffold, build and test approval policies.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use bookkeeper_core::Store;
use bookkeeper_http::wire::review::PolicyList;
use bookkeeper_http::ErrorBody;
use bookkeeper_policy_sdk::testing::{parse_cases, Case};
use clap::{Args, Subcommand};
use review_e::policy::toolchain::{self, Language};
use review_e::policy::{Compilation, DiskCache, Limits, LimitsRequest, LoadedPolicy, PolicyEngine};

/// Policy commands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Scaffold a new policy in Rust, Python or JavaScript, with recorded cases,
    /// a native test and a limits file.
    New(NewArgs),
    /// Build a policy project (Rust, Python or JavaScript) into a WebAssembly
    /// component, with its limits file beside it.
    Build(BuildArgs),
    /// Run a policy's recorded cases against its component (for a Python or
    /// JavaScript project, its native tests first); exits 1 on any mismatch.
    Test(TestArgs),
    /// Backtest: which recorded decisions would a candidate policy change?
    Replay(ReplayArgs),
    /// Re-run every recorded automatic decision and confirm it comes out the same.
    Verify,
    /// Upload a component to a running Review-E.
    Push(PushArgs),
    /// List the policies in force at a running Review-E.
    List(RemoteArgs),
}

impl PolicyCommand {
    /// Whether the command works without the event log.
    pub fn is_local(&self) -> bool {
        !matches!(self, PolicyCommand::Replay(_) | PolicyCommand::Verify)
    }
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The policy's name (letters, digits and dashes), also the folder created.
    name: String,
    /// Where to create it.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Build against the policy SDK at this path (policy-sdk/ of a Bookkeeper
    /// checkout) instead of its release on crates.io (Rust only).
    #[arg(long)]
    sdk: Option<PathBuf>,
    /// The language to write it in: rust, python or js.
    #[arg(long, default_value = "rust", value_parser = parse_language)]
    lang: Language,
}

fn parse_language(name: &str) -> Result<Language, String> {
    Language::parse(name).ok_or_else(|| format!("`{name}` is not a policy language; use rust, python or js"))
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The policy project.
    dir: PathBuf,
    /// Where to write the component (default: <dir>/policy.wasm).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// A built component (.wasm) or a policy project to build first.
    component: PathBuf,
    /// The cases file (default: cases.json beside the component or in the crate).
    #[arg(long)]
    cases: Option<PathBuf>,
    /// Also write the results as JUnit XML here, for CI.
    #[arg(long)]
    junit: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The candidate component.
    candidate: PathBuf,
    /// Only proposals made on or after this date (YYYY-MM-DD).
    #[arg(long)]
    since: Option<chrono::NaiveDate>,
}

#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// Review-E's address.
    #[arg(long, env = "REVIEW_E_URL", default_value = "http://127.0.0.1:8081")]
    url: String,
    /// A policy author's bearer token.
    #[arg(long, env = "BOOKKEEPER_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The component to publish.
    file: PathBuf,
    /// Publish in shadow mode: evaluated and recorded, but not deciding.
    #[arg(long)]
    shadow: bool,
    /// The limits it asks for (default: `<name>.limits.json` beside the
    /// component, when there is one; else the deployment's defaults).
    #[arg(long)]
    limits: Option<PathBuf>,
    #[command(flatten)]
    remote: RemoteArgs,
}

pub async fn run(command: PolicyCommand, store: Option<Store>) -> anyhow::Result<ExitCode> {
    match (command, store) {
        (PolicyCommand::New(args), _) => new(args),
        (PolicyCommand::Build(args), _) => build(args),
        (PolicyCommand::Test(args), _) => test(args),
        (PolicyCommand::Push(args), _) => push(args).await,
        (PolicyCommand::List(args), _) => list(args).await,
        (PolicyCommand::Replay(args), Some(store)) => replay(args, &store).await,
        (PolicyCommand::Verify, Some(store)) => verify(&store).await,
        (PolicyCommand::Replay(_) | PolicyCommand::Verify, None) => bail!("this command needs the event log"),
    }
}

/// Progress on stderr for long runs: a bar redrawn at most every percent.
fn progress_bar(label: &'static str) -> impl FnMut(usize, usize) {
    let mut last = usize::MAX;
    move |done, total| {
        if total < 200 {
            return;
        }
        let percent = done * 100 / total;
        if percent != last {
            last = percent;
            let filled = percent / 4;
            eprint!("\r{label} [{}{}] {done}/{total}", "#".repeat(filled), " ".repeat(25 - filled));
            if done == total {
                eprintln!();
            }
        }
    }
}

async fn replay(args: ReplayArgs, store: &Store) -> anyhow::Result<ExitCode> {
    let engine = review_e::backtest::engine_for_history(store, Limits::default()).await?;
    let bytes = std::fs::read(&args.candidate).with_context(|| format!("reading {}", args.candidate.display()))?;
    // Judged for its rules under the most a policy may have; its own limits
    // are granted when it is published.
    let candidate = engine
        .load_limited(&bytes, *engine.maxima(), None)
        .map(|l| l.policy)
        .context("the candidate is not a usable policy")?;
    let result = review_e::backtest::replay(store, &engine, &candidate, args.since, progress_bar("replaying")).await?;
    println!(
        "candidate {} {} (sha256 {}) over {} recorded decisions{}",
        candidate.metadata.name,
        candidate.metadata.version,
        &candidate.digest[..16],
        result.replayed,
        args.since.map(|d| format!(" since {d}")).unwrap_or_default()
    );
    if !result.changes.is_empty() {
        println!("\n{:<28} {:<17} {:<9} {:<9} REASON", "PROPOSAL", "PROPOSED", "WAS", "WOULD BE");
        for c in &result.changes {
            println!(
                "{:<28} {:<17} {:<9} {:<9} {}",
                truncate(&c.correlation_id, 28),
                c.proposed_at.format("%Y-%m-%d %H:%M"),
                c.recorded,
                c.candidate,
                c.reason
            );
        }
    }
    let mut transitions: std::collections::BTreeMap<String, usize> = Default::default();
    for c in &result.changes {
        *transitions.entry(format!("{} -> {}", c.recorded, c.candidate)).or_default() += 1;
    }
    println!("\n{} would change, {} unchanged", result.changes.len(), result.replayed - result.changes.len());
    for (t, n) in transitions {
        println!("  {t}: {n}");
    }
    for (id, why) in &result.skipped {
        println!("skipped {id}: {why}");
    }
    if !result.lacking.is_empty() {
        println!(
            "\n{} decisions were recorded before facts the candidate's contract ({}) has; it was given none for them:",
            result.lacking.len(),
            candidate.contract
        );
        for (id, facts) in &result.lacking {
            println!("  {id}: no {}", facts.join(", no "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn verify(store: &Store) -> anyhow::Result<ExitCode> {
    let engine = review_e::backtest::engine_for_history(store, Limits::default()).await?;
    let result = review_e::backtest::verify(store, &engine, progress_bar("verifying")).await?;
    for m in &result.mismatches {
        println!("MISMATCH {}: {}", m.correlation_id, m.detail);
    }
    println!(
        "{} automatic decisions re-run; {} identical, {} mismatched",
        result.checked,
        result.checked
            - result.mismatches.iter().map(|m| &m.correlation_id).collect::<std::collections::HashSet<_>>().len(),
        result.mismatches.len()
    );
    Ok(if result.mismatches.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

async fn push(args: PushArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let mode = if args.shadow { "shadow" } else { "enforcing" };
    let limits_path = args.limits.clone().unwrap_or_else(|| review_e::folder::limits_file_of(&args.file));
    let limits = match std::fs::read(&limits_path) {
        Ok(json) => LimitsRequest::parse(&json).with_context(|| format!("reading {}", limits_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && args.limits.is_none() => LimitsRequest::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", limits_path.display())),
    };
    let mut query = vec![("mode", mode.to_string())];
    for (key, value) in [
        ("deadline_ms", limits.deadline_ms),
        ("memory_mib", limits.memory_mib),
        ("component_mib", limits.component_mib),
        ("core_instances", limits.core_instances.map(u64::from)),
    ] {
        if let Some(v) = value {
            query.push((key, v.to_string()));
        }
    }
    let response = reqwest::Client::new()
        .post(format!("{}/policies", args.remote.url.trim_end_matches('/')))
        .query(&query)
        .bearer_auth(&args.remote.token)
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .with_context(|| format!("cannot reach Review-E at {}", args.remote.url))?;
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    if !status.is_success() {
        bail!("Review-E refused the policy ({status}): {}", ErrorBody::text_of(status.as_u16(), &bytes));
    }
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    println!("published {} {} ({mode}), sha256 {}", body["name"], body["version"], body["digest"]);
    if let Ok(granted) = serde_json::from_value::<review_e::policy::RecordedLimits>(body["limits"].clone()) {
        println!("runs under {}", granted.describe());
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(args: RemoteArgs) -> anyhow::Result<ExitCode> {
    let response = reqwest::Client::new()
        .get(format!("{}/policies", args.url.trim_end_matches('/')))
        .bearer_auth(&args.token)
        .send()
        .await
        .with_context(|| format!("cannot reach Review-E at {}", args.url))?;
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    if !status.is_success() {
        bail!("Review-E answered {status}: {}", ErrorBody::text_of(status.as_u16(), &body));
    }
    let list: PolicyList = serde_json::from_slice(&body).context("Review-E's policy list could not be read")?;
    println!("{:<24} {:<10} {:<10} {:<32} {:<22} SHA256", "POLICY", "VERSION", "MODE", "SOURCE", "PUBLISHED BY");
    for p in list.policies {
        println!(
            "{:<24} {:<10} {:<10} {:<32} {:<22} {}",
            p.name,
            p.version,
            p.mode,
            truncate(p.source.as_deref().unwrap_or_default(), 32),
            p.published_by,
            &p.digest.chars().take(16).collect::<String>()
        );
        if let Some(l) = &p.limits {
            let limits = review_e::policy::RecordedLimits {
                deadline_ms: l.deadline_ms,
                memory_bytes: l.memory_bytes,
                component_bytes: l.component_bytes,
                core_instances: l.core_instances,
            };
            println!("  contract {}, runs under {}", p.contract.as_deref().unwrap_or("0.1.0"), limits.describe());
        }
        if !p.loaded {
            println!(
                "  NOT LOADED on this replica: {} (every proposal it judges goes to a person)",
                p.why.as_deref().unwrap_or("no reason given")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The version requirement a new policy names: the SDK release of this binary's
/// contract, compatible releases included (`0.1.0` -> `0.1`).
fn sdk_requirement(version: &str) -> String {
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => version.to_string(),
    }
}

fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    let name = args.name.trim().to_string();
    if name.is_empty()
        || name.len() > 64
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
        || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        bail!("the policy name `{name}` must be lower-case letters, digits and dashes, like `small-receipts`");
    }
    let root = args.dir.join(&name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    match args.lang {
        Language::Rust => new_rust(&args, &name, &root)?,
        Language::Python | Language::JavaScript => new_interpreted(args.lang, &name, &root)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The cases every new policy starts with, whatever its language.
const NEW_CASES: &str = r#"{
  "cases": [
    {
      "name": "a small receipt is approved",
      "proposal": {"proposal_type": "ReceiptAttachmentProposed", "amount": {"minor": 19900, "currency": "NOK"}, "has_document": true},
      "facts": {"today": "2026-11-25"},
      "expect": "approve"
    },
    {
      "name": "a large receipt goes to a person",
      "proposal": {"proposal_type": "ReceiptAttachmentProposed", "amount": {"minor": 250000, "currency": "NOK"}, "has_document": true},
      "facts": {"today": "2026-11-25"},
      "expect": "escalate", "reason_contains": "needs a person"
    }
  ]
}
"#;

/// A Python or JavaScript policy project: the policy, the helpers, a native
/// test, the cases, the limits it asks for and the contract it is written
/// against (its own copy, so it keeps that version when a newer one comes).
fn new_interpreted(language: Language, name: &str, root: &Path) -> anyhow::Result<()> {
    let files: &[(&str, &str)] = match language {
        Language::Python => &[
            ("policy.py", include_str!("templates/python/policy.py")),
            ("bookkeeper_policy.py", include_str!("templates/python/bookkeeper_policy.py")),
            ("test_policy.py", include_str!("templates/python/test_policy.py")),
            ("limits.json", include_str!("templates/python/limits.json")),
            (".gitignore", include_str!("templates/python/gitignore")),
        ],
        _ => &[
            ("policy.js", include_str!("templates/js/policy.js")),
            ("bookkeeper-policy.js", include_str!("templates/js/bookkeeper-policy.js")),
            ("policy.test.js", include_str!("templates/js/policy.test.js")),
            ("package.json", include_str!("templates/js/package.json")),
            ("limits.json", include_str!("templates/js/limits.json")),
            (".gitignore", include_str!("templates/js/gitignore")),
        ],
    };
    std::fs::create_dir_all(root.join("wit")).with_context(|| format!("creating {}", root.display()))?;
    for (file, text) in files {
        std::fs::write(root.join(file), text.replace("{{name}}", name))?;
    }
    std::fs::write(root.join("cases.json"), NEW_CASES)?;
    std::fs::write(root.join("wit/policy.wit"), toolchain::CONTRACT_WIT)?;
    println!("created {} ({language}, contract {})", root.display(), review_e::policy::Contract::LATEST);
    println!(
        "next: bookkeeper policy test {0}   (runs its {1} tests, builds it, runs the cases against the component)",
        root.display(),
        if language == Language::Python { "pytest" } else { "node --test" }
    );
    println!("then: bookkeeper policy build {0} --out {1}.wasm", root.display(), name);
    Ok(())
}

fn new_rust(args: &NewArgs, name: &str, root: &Path) -> anyhow::Result<()> {
    // The SDK release this binary speaks the contract of, or the checkout given.
    let sdk = match &args.sdk {
        Some(path) => {
            let path = path.canonicalize().with_context(|| {
                format!("the policy SDK is not at {}; pass --sdk <path to policy-sdk>", path.display())
            })?;
            anyhow::ensure!(
                path.join("Cargo.toml").is_file(),
                "{} is not the policy SDK (no Cargo.toml); pass --sdk <path to policy-sdk>",
                path.display()
            );
            format!("{{ path = {:?} }}", path.display().to_string())
        }
        None => format!("\"{}\"", sdk_requirement(bookkeeper_policy_sdk::VERSION)),
    };
    let type_name: String = name
        .split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    std::fs::create_dir_all(root.join("src"))?;
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            r#"[package]
name = "policy-{name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
bookkeeper-policy-sdk = {sdk}

[profile.release]
opt-level = "s"
lto = true

# A policy is its own workspace.
[workspace]
"#,
        ),
    )?;
    std::fs::write(
        root.join("src/lib.rs"),
        format!(
            r#"//! {name}: describe what this policy decides and why.

use bookkeeper_policy_sdk::{{Decision, Facts, Metadata, Money, Policy, Proposal}};

pub struct {type_name};

impl Policy for {type_name} {{
    fn metadata() -> Metadata {{
        Metadata::new("{name}", "0.1.0", "Approves receipts under 500 NOK; asks a person otherwise")
            .applies_to(["ReceiptAttachmentProposed"])
    }}

    fn evaluate(proposal: &Proposal, _facts: &Facts) -> Decision {{
        match &proposal.amount {{
            Some(amount) if amount.currency == "NOK" && amount.minor < Money::kroner(500).minor => {{
                Decision::approve(format!("{{amount}} is under 500 NOK"))
            }}
            Some(amount) => Decision::escalate(format!("{{amount}} needs a person")),
            None => Decision::escalate("the amount is unknown"),
        }}
    }}
}}

bookkeeper_policy_sdk::export_policy!({type_name});

#[cfg(test)]
mod tests {{
    #[test]
    fn recorded_cases() {{
        bookkeeper_policy_sdk::testing::check_cases::<super::{type_name}>(include_str!("../cases.json"));
    }}
}}
"#
        ),
    )?;
    std::fs::write(root.join("cases.json"), NEW_CASES)?;
    std::fs::write(root.join(".gitignore"), "/target\n*.wasm\n")?;
    println!("created {}", root.display());
    if args.sdk.is_none() {
        println!(
            "it builds against bookkeeper-policy-sdk {} from crates.io; with --sdk <path> against a checkout instead",
            sdk_requirement(bookkeeper_policy_sdk::VERSION)
        );
    }
    println!("next: cargo test --manifest-path {0}/Cargo.toml && bookkeeper policy test {0}", root.display());
    Ok(())
}

/// An engine as a deployment with the built-in maxima would run it: what a
/// component is checked against on the author's machine.
fn local_engine() -> anyhow::Result<PolicyEngine> {
    PolicyEngine::new(Limits::default())
}

/// Loads `bytes` under what `request` asks for, as Review-E would grant it,
/// through this machine's compile cache (a large policy compiles once).
fn load_as_published(engine: &PolicyEngine, bytes: &[u8], request: &LimitsRequest) -> anyhow::Result<LoadedPolicy> {
    let limits = request.grant(engine.defaults(), engine.maxima())?;
    let cache = toolchain::compile_cache_home().and_then(|home| match DiskCache::open(&home, engine) {
        Ok(cache) => Some(cache),
        Err(e) => {
            eprintln!("warning: {e}; compiling without it");
            None
        }
    });
    let started = std::time::Instant::now();
    let (loaded, compilation) = engine.load_cached(bytes, limits, cache.as_ref())?;
    match (compilation, &cache) {
        (Compilation::Cached, Some(cache)) => eprintln!("compiled code from {}", cache.folder().display()),
        (Compilation::Compiled, _) if started.elapsed() > std::time::Duration::from_secs(1) => eprintln!(
            "compiled in {:.1} s{}",
            started.elapsed().as_secs_f64(),
            if cache.is_some() { " (kept for the next run)" } else { "" }
        ),
        _ => {}
    }
    Ok(loaded.policy)
}

fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let built = toolchain::build_project(&args.dir)?;
    let engine = local_engine()?;
    let policy = load_as_published(&engine, &built.component, &built.limits)
        .context("the built component is not a usable policy")?;
    let out = args.out.unwrap_or_else(|| args.dir.join("policy.wasm"));
    std::fs::write(&out, &built.component).with_context(|| format!("writing {}", out.display()))?;
    // The limits travel beside the component: the policy folder and `policy
    // push` read `<name>.limits.json`.
    let limits_out = review_e::folder::limits_file_of(&out);
    if built.limits.is_empty() {
        if limits_out.is_file() {
            std::fs::remove_file(&limits_out).with_context(|| format!("removing {}", limits_out.display()))?;
        }
    } else {
        let json = serde_json::to_string_pretty(&built.limits)? + "\n";
        std::fs::write(&limits_out, json).with_context(|| format!("writing {}", limits_out.display()))?;
    }
    println!(
        "{} {} ({}, contract {}) -> {} ({} bytes, sha256 {})",
        policy.metadata.name,
        policy.metadata.version,
        built.language,
        policy.contract,
        out.display(),
        built.component.len(),
        policy.digest
    );
    if !built.limits.is_empty() {
        println!(
            "limits -> {} ({})",
            limits_out.display(),
            review_e::policy::RecordedLimits::from(policy.limits).describe()
        );
    }
    Ok(ExitCode::SUCCESS)
}

struct Outcome {
    case: Case,
    actual: String,
    reason: String,
    passed: bool,
    micros: u128,
}

fn test(args: TestArgs) -> anyhow::Result<ExitCode> {
    let (bytes, request, default_cases) = if args.component.is_dir() {
        let dir = &args.component;
        if Language::of_project(dir)? != Language::Rust {
            // The policy's own tests first: a failure there is the clearer message.
            let output = toolchain::native_test(dir)?;
            let summary = output.lines().rev().find(|l| l.contains("pass")).unwrap_or_default();
            println!("native tests passed: {}", summary.trim());
        }
        let built = toolchain::build_project(dir)?;
        (built.component, built.limits, dir.join("cases.json"))
    } else {
        let bytes = std::fs::read(&args.component).with_context(|| format!("reading {}", args.component.display()))?;
        let limits_path = review_e::folder::limits_file_of(&args.component);
        let request = match std::fs::read(&limits_path) {
            Ok(json) => LimitsRequest::parse(&json).with_context(|| format!("reading {}", limits_path.display()))?,
            Err(_) => LimitsRequest::default(),
        };
        (bytes, request, args.component.with_file_name("cases.json"))
    };
    let cases_path = args.cases.unwrap_or(default_cases);
    let cases = parse_cases(
        &std::fs::read_to_string(&cases_path)
            .with_context(|| format!("reading cases from {}", cases_path.display()))?,
    )
    .map_err(anyhow::Error::msg)?;
    if cases.cases.is_empty() {
        bail!("{} has no cases", cases_path.display());
    }
    let policy =
        load_as_published(&local_engine()?, &bytes, &request).context("the component is not a usable policy")?;
    let outcomes: Vec<Outcome> = cases.cases.into_iter().map(|case| run_case(&policy, case)).collect();
    print_table(&policy, &outcomes);
    if let Some(path) = &args.junit {
        write_junit(path, &policy, &outcomes)?;
    }
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    println!("\n{} passed, {failed} failed", outcomes.len() - failed);
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn run_case(policy: &LoadedPolicy, case: Case) -> Outcome {
    let (result, took) = policy.evaluate(&case.proposal, &case.facts);
    let (actual, reason, passed) = match &result {
        Ok(decision) => (decision.outcome().to_string(), decision.reason().to_string(), case.accepts(decision)),
        Err(fault) => ("fault".to_string(), fault.to_string(), false),
    };
    Outcome { case, actual, reason, passed, micros: took.as_micros() }
}

fn print_table(policy: &LoadedPolicy, outcomes: &[Outcome]) {
    println!("{} {} (sha256 {})\n", policy.metadata.name, policy.metadata.version, &policy.digest[..16]);
    println!("{:<4} {:<48} {:<9} {:<9} REASON", "", "CASE", "EXPECTED", "ACTUAL");
    for o in outcomes {
        let expected = match &o.case.reason_contains {
            Some(_) => format!("{}*", o.case.expect),
            None => o.case.expect.to_string(),
        };
        println!(
            "{:<4} {:<48} {:<9} {:<9} {}",
            if o.passed { "ok" } else { "FAIL" },
            truncate(&o.case.name, 48),
            expected,
            o.actual,
            o.reason
        );
        if !o.passed {
            if let Some(needle) = &o.case.reason_contains {
                println!("{:<4} {:<48} expected the reason to contain {needle:?}", "", "");
            }
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    text.chars().take(max - 1).chain(std::iter::once('…')).collect()
}

fn write_junit(path: &Path, policy: &LoadedPolicy, outcomes: &[Outcome]) -> anyhow::Result<()> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let name = policy.metadata.name.as_str();
    let mut suite = TestSuite::new(name);
    for o in outcomes {
        let status = if o.passed {
            TestCaseStatus::success()
        } else {
            let mut failed = TestCaseStatus::non_success(NonSuccessKind::Failure);
            failed
                .set_message(format!("expected {}, got {}", o.case.expect, o.actual))
                .set_description(o.reason.as_str());
            failed
        };
        let mut case = TestCase::new(o.case.name.as_str(), status);
        case.set_classname(name)
            .set_time(std::time::Duration::from_micros(u64::try_from(o.micros).unwrap_or(u64::MAX)));
        suite.add_test_case(case);
    }
    let mut report = Report::new(format!("policy {name}"));
    report.add_test_suite(suite);
    let file = std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    report.serialize(std::io::BufWriter::new(file)).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
