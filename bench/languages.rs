//! `bookkeeper bench languages`: one rule, small-receipts, written in Rust,
//! Python and JavaScript, evaluated side by side in one run: instantiation and
//! the call apart, p50 and p99, each as a ratio to the Rust component (the floor);
//! what making one instance costs (a slow one is made ahead of need, as a spare),
//! and evaluations back to back, where spares cannot keep up; and a component's
//! first decision after a restart, compiling it versus loading the compiled
//! artifact Review-E caches.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use bookkeeper_policy_sdk::{Facts, Proposal};
use clap::Args;
use review_e::policy::toolchain;
use review_e::policy::{Limits, LimitsRequest, LoadedPolicy, PolicyEngine};

/// Arguments of `bench languages`.
#[derive(Debug, Args)]
pub struct LanguagesBenchArgs {
    /// Evaluations per language.
    #[arg(long, default_value_t = 5_000)]
    evaluations: usize,
    /// The Bookkeeper checkout whose `policies/` to build (default: this build's).
    #[arg(long)]
    repo: Option<PathBuf>,
    /// Keep no spare instances, even for a policy slow to instantiate (to
    /// compare).
    #[arg(long)]
    no_spares: bool,
}

/// Instantiation at most this (the target, every language).
const INSTANTIATE_TARGET: Duration = Duration::from_micros(100);
/// A whole evaluation at most this, p50, for Python and JavaScript.
const EVALUATE_TARGET: Duration = Duration::from_millis(1);

struct Language {
    name: &'static str,
    component: Vec<u8>,
    limits: LimitsRequest,
}

struct Figures {
    /// Getting a fresh instance, as a decision waits for it (a spare when the
    /// policy keeps them and proposals arrive apart).
    instantiate: (f64, f64),
    /// Making one instance: what it costs, wherever it is spent.
    make: (f64, f64),
    /// A whole evaluation, back to back with no pause (spares cannot keep up).
    burst: (f64, f64),
    spares: bool,
    call: (f64, f64),
    total: (f64, f64),
    cold_first: Duration,
    cached_first: Duration,
    compiled_bytes: usize,
}

pub async fn languages(args: LanguagesBenchArgs) -> anyhow::Result<()> {
    let repo = args.repo.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf());
    let policies = repo.join("policies");
    println!(
        "bookkeeper bench languages: small-receipts in Rust, Python and JavaScript, {} evaluations each",
        args.evaluations
    );
    println!("building (Python and JavaScript install their toolchain on first use) ...");
    let mut languages = vec![Language {
        name: "rust",
        component: crate::example("small-receipts")?.to_vec(),
        limits: LimitsRequest::default(),
    }];
    for (name, dir) in [("python", "small-receipts-python"), ("js", "small-receipts-js")] {
        let dir = policies.join(dir);
        let built = tokio::task::spawn_blocking(move || toolchain::build_project(&dir))
            .await?
            .with_context(|| format!("building the {name} policy"))?;
        languages.push(Language { name, component: built.component, limits: built.limits });
    }
    let cases = bookkeeper_policy_sdk::testing::parse_cases(&std::fs::read_to_string(
        policies.join("small-receipts/cases.json"),
    )?)
    .map_err(anyhow::Error::msg)?;
    let inputs: Vec<(Proposal, Facts)> = cases.cases.iter().map(|c| (c.proposal.clone(), c.facts.clone())).collect();

    let mut figures = Vec::new();
    for language in &languages {
        figures.push(measure(language, &inputs, args.evaluations, args.no_spares)?);
    }

    let floor = &figures[0];
    println!();
    println!(
        "{:<10} {:>10} {:>9} {:>10} {:>9} {:>10} {:>9} {:>8} {:>9}",
        "one evaluation, fresh instance (us)", "", "", "", "", "", "", "", ""
    );
    println!(
        "{:<10} {:>10} {:>9} {:>10} {:>9} {:>10} {:>9} {:>8} {:>9}",
        "language", "inst p50", "inst p99", "call p50", "call p99", "total p50", "total p99", "x rust", "size MB"
    );
    for (language, f) in languages.iter().zip(&figures) {
        println!(
            "{:<10} {:>10.1} {:>9.1} {:>10.1} {:>9.1} {:>10.1} {:>9.1} {:>8.0} {:>9.1}",
            language.name,
            f.instantiate.0,
            f.instantiate.1,
            f.call.0,
            f.call.1,
            f.total.0,
            f.total.1,
            f.total.0 / floor.total.0,
            language.component.len() as f64 / 1e6
        );
    }
    println!();
    println!(
        "{:<10} {:>8} {:>12} {:>12} {:>12} {:>12}",
        "making an instance, and evaluations back to back (us)", "", "", "", "", ""
    );
    println!(
        "{:<10} {:>8} {:>12} {:>12} {:>12} {:>12}",
        "language", "spares", "make p50", "make p99", "burst p50", "burst p99"
    );
    for (language, f) in languages.iter().zip(&figures) {
        println!(
            "{:<10} {:>8} {:>12.1} {:>12.1} {:>12.1} {:>12.1}",
            language.name,
            if f.spares { "yes" } else { "no" },
            f.make.0,
            f.make.1,
            f.burst.0,
            f.burst.1
        );
    }
    println!();
    println!("{:<10} {:>22} {:>22} {:>10} {:>14}", "first decision after a restart", "", "", "", "");
    println!(
        "{:<10} {:>22} {:>22} {:>10} {:>14}",
        "language", "compiling (ms)", "from the cache (ms)", "ratio", "artifact MB"
    );
    for (language, f) in languages.iter().zip(&figures) {
        println!(
            "{:<10} {:>22.1} {:>22.1} {:>10.0} {:>14.1}",
            language.name,
            f.cold_first.as_secs_f64() * 1e3,
            f.cached_first.as_secs_f64() * 1e3,
            f.cold_first.as_secs_f64() / f.cached_first.as_secs_f64().max(1e-9),
            f.compiled_bytes as f64 / 1e6
        );
    }
    println!();
    println!(
        "targets: instantiation <= {} us in every language; a whole evaluation <= {} ms p50 in Python and JavaScript",
        INSTANTIATE_TARGET.as_micros(),
        EVALUATE_TARGET.as_millis()
    );
    for (language, f) in languages.iter().zip(&figures) {
        let inst = f.instantiate.0 <= INSTANTIATE_TARGET.as_secs_f64() * 1e6;
        let total = language.name == "rust" || f.total.0 <= EVALUATE_TARGET.as_secs_f64() * 1e6;
        println!(
            "  {:<8} instantiation {} ({:.2}x the target), evaluation {}",
            language.name,
            if inst { "met" } else { "MISSED" },
            f.instantiate.0 / (INSTANTIATE_TARGET.as_secs_f64() * 1e6),
            if language.name == "rust" {
                "(the floor)".to_string()
            } else {
                format!("{} ({:.2}x the target)", if total { "met" } else { "MISSED" }, f.total.0 / 1e3)
            }
        );
    }
    Ok(())
}

fn measure(language: &Language, inputs: &[(Proposal, Facts)], n: usize, no_spares: bool) -> anyhow::Result<Figures> {
    // A restart without the cache: a fresh engine compiles the component, asks
    // it for its metadata and makes its first decision.
    let engine = PolicyEngine::new(Limits::default())?;
    let limits = language.limits.grant(engine.defaults(), engine.maxima())?;
    let started = Instant::now();
    let loaded = engine.load_limited(&language.component, limits, None)?;
    let (first, _) = loaded.policy.evaluate(&inputs[0].0, &inputs[0].1);
    first.with_context(|| format!("{}: the first decision", language.name))?;
    let cold_first = started.elapsed();
    let artifact = loaded.compiled.context("a fresh engine compiled, so it has an artifact")?;

    // A restart with the cache: a fresh engine loads the artifact instead.
    let engine = PolicyEngine::new(Limits::default())?;
    if no_spares {
        engine.keep_spares_above(Duration::MAX);
    }
    let started = Instant::now();
    let warm = engine.load_limited(&language.component, limits, Some(&artifact))?;
    anyhow::ensure!(warm.compiled.is_none(), "{}: the cached artifact was not used", language.name);
    let (first, _) = warm.policy.evaluate(&inputs[0].0, &inputs[0].1);
    first.with_context(|| format!("{}: the first decision from the cache", language.name))?;
    let cached_first = started.elapsed();

    // As Review-E holds a policy in force (a slow one keeps spares).
    let policy: LoadedPolicy = warm.policy.with_spares();
    for (p, f) in inputs.iter().cycle().take(200) {
        policy.evaluate(p, f).0.with_context(|| format!("{}: warm-up", language.name))?;
    }
    let (mut inst, mut call, mut total) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for (p, f) in inputs.iter().cycle().take(n) {
        let (result, i, c) = policy.evaluate_split(p, f);
        result.with_context(|| format!("{}: an evaluation", language.name))?;
        inst.push(i.as_secs_f64() * 1e6);
        call.push(c.as_secs_f64() * 1e6);
        total.push((i + c).as_secs_f64() * 1e6);
        // Proposals arrive one at a time, not back to back: the next comes
        // once the spares are made again (what `burst` below does not allow).
        let deadline = Instant::now() + Duration::from_millis(50);
        while policy.spares_missing() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    let mut make = Vec::with_capacity(n / 4);
    for _ in 0..n / 4 {
        let started = Instant::now();
        policy.make_instance_only().with_context(|| format!("{}: making an instance", language.name))?;
        make.push(started.elapsed().as_secs_f64() * 1e6);
    }
    let mut burst = Vec::with_capacity(n / 4);
    for (p, f) in inputs.iter().cycle().take(n / 4) {
        let (result, took) = policy.evaluate(p, f);
        result.with_context(|| format!("{}: an evaluation", language.name))?;
        burst.push(took.as_secs_f64() * 1e6);
    }
    let pair = |s: &mut Vec<f64>| (crate::store::percentile(s, 0.5), crate::store::percentile(s, 0.99));
    Ok(Figures {
        instantiate: pair(&mut inst),
        make: pair(&mut make),
        burst: pair(&mut burst),
        spares: policy.keeps_spares(),
        call: pair(&mut call),
        total: pair(&mut total),
        cold_first,
        cached_first,
        compiled_bytes: artifact.len(),
    })
}
