//! `bookkeeper policy ...`: scaffold, build and test approval policies.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use bookkeeper_core::Store;
use bookkeeper_http::wire::review::PolicyList;
use bookkeeper_http::ErrorBody;
use bookkeeper_policy_sdk::testing::{parse_cases, Case};
use clap::{Args, Subcommand};
use review_e::policy::{toolchain, Limits, LoadedPolicy, PolicyEngine};

/// Policy commands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Scaffold a new policy crate: Cargo.toml, src/lib.rs and a cases file.
    New(NewArgs),
    /// Build a policy crate into a WebAssembly component.
    Build(BuildArgs),
    /// Run a policy's recorded cases against its component; exits 1 on any mismatch.
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
    /// checkout) instead of its release on crates.io.
    #[arg(long)]
    sdk: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The policy crate.
    dir: PathBuf,
    /// Where to write the component (default: <dir>/policy.wasm).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// A built component (.wasm) or a policy crate to build first.
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
    let engine = PolicyEngine::new(Limits::default())?;
    let bytes = std::fs::read(&args.candidate).with_context(|| format!("reading {}", args.candidate.display()))?;
    let candidate = engine.load(&bytes).context("the candidate is not a usable policy")?;
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
    Ok(ExitCode::SUCCESS)
}

async fn verify(store: &Store) -> anyhow::Result<ExitCode> {
    let engine = PolicyEngine::new(Limits::default())?;
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
    let response = reqwest::Client::new()
        .post(format!("{}/policies?mode={mode}", args.remote.url.trim_end_matches('/')))
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
    let name = args.name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        bail!("the policy name `{name}` must be lower-case letters, digits and dashes, like `small-receipts`");
    }
    let root = args.dir.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
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
    std::fs::write(
        root.join("cases.json"),
        r#"{
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
"#,
    )?;
    std::fs::write(root.join(".gitignore"), "/target\n*.wasm\n")?;
    println!("created {}", root.display());
    if args.sdk.is_none() {
        println!(
            "it builds against bookkeeper-policy-sdk {} from crates.io; with --sdk <path> against a checkout instead",
            sdk_requirement(bookkeeper_policy_sdk::VERSION)
        );
    }
    println!("next: cargo test --manifest-path {0}/Cargo.toml && bookkeeper policy test {0}", root.display());
    Ok(ExitCode::SUCCESS)
}

fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let bytes = toolchain::build(&args.dir, &[])?;
    let policy =
        PolicyEngine::new(Limits::default())?.load(&bytes).context("the built component is not a usable policy")?;
    let out = args.out.unwrap_or_else(|| args.dir.join("policy.wasm"));
    std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{} {} -> {} ({} bytes, sha256 {})",
        policy.metadata.name,
        policy.metadata.version,
        out.display(),
        bytes.len(),
        policy.digest
    );
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
    let (bytes, default_cases) = if args.component.is_dir() {
        (toolchain::build(&args.component, &[])?, args.component.join("cases.json"))
    } else {
        let bytes = std::fs::read(&args.component).with_context(|| format!("reading {}", args.component.display()))?;
        (bytes, args.component.with_file_name("cases.json"))
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
    let policy = PolicyEngine::new(Limits::default())?.load(&bytes).context("the component is not a usable policy")?;
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
