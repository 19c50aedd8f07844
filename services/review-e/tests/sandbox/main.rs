//! The policy sandbox against real components: the example policies, and hostile
//! ones built from `tests/hostile` (one cargo feature per misdeed) or written in WAT.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bookkeeper_policy_sdk::testing::parse_cases;
use bookkeeper_policy_sdk::{Facts, Money, Outcome, Proposal, Vendor};
use review_e::policy::toolchain;
use review_e::policy::{Contract, Fault, Limits, LimitsError, LimitsRequest, LoadError, Mode, PolicyEngine, PolicySet};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds a policy crate once per test process (cargo serialises its own builds).
fn component(dir: &Path, features: &[&str]) -> Vec<u8> {
    static BUILT: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    let key = format!("{}:{}", dir.display(), features.join(","));
    let built = BUILT.get_or_init(Default::default);
    if let Some(bytes) = built.lock().unwrap().get(&key) {
        return bytes.clone();
    }
    let bytes = toolchain::build(dir, features).unwrap_or_else(|e| panic!("building {key}: {e}"));
    built.lock().unwrap().insert(key, bytes.clone());
    bytes
}

fn hostile(feature: &str) -> Vec<u8> {
    let features: Vec<&str> = if feature.is_empty() { vec![] } else { vec![feature] };
    component(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile"), &features)
}

fn example(name: &str) -> Vec<u8> {
    component(&repo().join("policies").join(name), &[])
}

fn engine() -> PolicyEngine {
    PolicyEngine::new(Limits::default()).unwrap()
}

/// An engine whose deadline is far away, for tests of the other limits: on a busy
/// machine the default 10 ms could end a memory bomb before the memory cap does.
fn patient_engine() -> PolicyEngine {
    PolicyEngine::new(Limits { deadline: Duration::from_secs(5), ..Limits::default() }).unwrap()
}

fn receipt() -> Proposal {
    Proposal {
        proposal_type: "ReceiptAttachmentProposed".into(),
        correlation_id: "c-1".into(),
        proposed_by: "book-e".into(),
        requested_by: "user:ola".into(),
        amount: Some(Money::nok(49_900)),
        vendor: Some(Vendor { name: "Kiwi".into(), organization_number: None }),
        account: None,
        description: None,
        invoice_number: None,
        invoice_date: None,
        due_date: None,
        has_document: true,
        document_type: None,
        payload_json: "{}".into(),
    }
}

fn facts() -> Facts {
    let mut f = Facts { today: "2026-11-25".into(), ..Facts::default() };
    f.vendor_history.payments = 3;
    f.vendor_history.largest_minor = 90_000;
    f
}

#[test]
fn every_example_policy_passes_its_recorded_cases_as_a_component() {
    let engine = patient_engine();
    for name in ["small-receipts", "duplicate-invoice", "monthly-budget", "unusual-vendor"] {
        let policy = engine.load(&example(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(policy.metadata.name, name);
        let cases =
            parse_cases(&std::fs::read_to_string(repo().join("policies").join(name).join("cases.json")).unwrap())
                .unwrap();
        assert!(cases.cases.len() >= 8, "{name} needs at least 8 cases");
        for case in &cases.cases {
            let (result, _) = policy.evaluate(&case.proposal, &case.facts);
            let decision = result.unwrap_or_else(|f| panic!("{name} / {}: {f}", case.name));
            assert!(case.accepts(&decision), "{name} / {}: got {decision:?}", case.name);
        }
    }
}

#[test]
fn an_infinite_loop_is_stopped_at_the_deadline() {
    let engine = PolicyEngine::new(Limits { deadline: Duration::from_millis(20), ..Limits::default() }).unwrap();
    let policy = engine.load(&hostile("infinite-loop")).unwrap();
    let started = Instant::now();
    let (result, _) = policy.evaluate(&receipt(), &facts());
    assert_eq!(result, Err(Fault::Timeout(Duration::from_millis(20))));
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    still_serving(&engine);
}

#[test]
fn a_memory_bomb_hits_the_cap() {
    let engine = patient_engine();
    let policy = engine.load(&hostile("memory-bomb")).unwrap();
    let (result, _) = policy.evaluate(&receipt(), &facts());
    match result {
        Err(Fault::Trap(why)) => assert!(!why.is_empty()),
        other => panic!("expected the memory cap to trap, got {other:?}"),
    }
    still_serving(&engine);
}

#[test]
fn deep_recursion_overflows_the_stack_safely() {
    let engine = patient_engine();
    let policy = engine.load(&hostile("deep-recursion")).unwrap();
    let (result, _) = policy.evaluate(&receipt(), &facts());
    match result {
        // Rust guests keep most of their stack in linear memory: running off its
        // end is an out-of-bounds access; the engine's own stack limit catches
        // the rest.
        Err(Fault::Trap(why)) => assert!(why.contains("stack") || why.contains("out of bounds"), "{why}"),
        other => panic!("expected a stack overflow trap, got {other:?}"),
    }
    still_serving(&engine);
}

#[test]
fn a_panic_is_a_trap_naming_nothing_of_the_host() {
    let engine = patient_engine();
    let policy = engine.load(&hostile("panic")).unwrap();
    let (result, _) = policy.evaluate(&receipt(), &facts());
    assert!(matches!(result, Err(Fault::Trap(_))), "{result:?}");
    still_serving(&engine);
}

#[test]
fn an_oversized_reason_is_a_fault() {
    let engine = patient_engine();
    let policy = engine.load(&hostile("long-reason")).unwrap();
    let (result, _) = policy.evaluate(&receipt(), &facts());
    assert_eq!(result, Err(Fault::ReasonTooLong(10_000)));
}

#[test]
fn nothing_leaks_between_evaluations() {
    let engine = patient_engine();
    let policy = engine.load(&hostile("remembers")).unwrap();
    for _ in 0..3 {
        let (result, _) = policy.evaluate(&receipt(), &facts());
        assert_eq!(result.unwrap().reason(), "call number 1", "each evaluation must start from a fresh instance");
    }
}

#[test]
fn spare_instances_are_fresh_and_run_under_a_deadline_counted_from_their_use() {
    // Spares are made for slow components (an interpreter's); here for every
    // one, so a small Rust policy exercises them.
    let engine = PolicyEngine::new(Limits { deadline: Duration::from_millis(200), ..Limits::default() }).unwrap();
    engine.keep_spares_above(Duration::ZERO);
    let remembers = engine.load(&hostile("remembers")).unwrap();
    assert!(!remembers.keeps_spares(), "only a policy put in force keeps spares");
    let remembers = remembers.with_spares();
    assert!(remembers.keeps_spares());
    for _ in 0..4 {
        let (result, _) = remembers.evaluate(&receipt(), &facts());
        assert_eq!(result.unwrap().reason(), "call number 1", "a spare is a fresh instance, never a used one");
        wait_for_spares(&remembers);
    }
    // A spare made long before its use still gets its whole deadline: made,
    // then left longer than the deadline, it decides rather than timing out.
    let small = engine.load(&example("small-receipts")).unwrap().with_spares();
    wait_for_spares(&small);
    std::thread::sleep(Duration::from_millis(400));
    let (result, _) = small.evaluate(&receipt(), &facts());
    assert!(result.is_ok(), "{result:?}");
    // And a spare of a policy that loops is still stopped at the deadline.
    let spinner = engine.load(&hostile("infinite-loop")).unwrap().with_spares();
    wait_for_spares(&spinner);
    let (result, took) = spinner.evaluate(&receipt(), &facts());
    assert!(matches!(result, Err(Fault::Timeout(_))), "{result:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn an_authors_compile_cache_compiles_a_component_once_and_never_trusts_a_shared_folder() {
    use review_e::policy::{Compilation, DiskCache, DiskCacheError};
    use std::os::unix::fs::PermissionsExt as _;
    let home = tempfile_dir("compile-cache");
    let bytes = example("small-receipts");
    let limits = Limits::default();
    let first = engine();
    let cache = DiskCache::open(&home, &first).unwrap();
    let mode = std::fs::metadata(cache.folder()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "only its owner may enter where native code is kept");
    let (_, how) = first.load_cached(&bytes, limits, Some(&cache)).unwrap();
    assert_eq!(how, Compilation::Compiled);
    // Another run (a fresh engine, as the next `policy test` is) reads it back.
    let second = engine();
    let cache = DiskCache::open(&home, &second).unwrap();
    let (loaded, how) = second.load_cached(&bytes, limits, Some(&cache)).unwrap();
    assert_eq!(how, Compilation::Cached);
    assert!(loaded.policy.evaluate(&receipt(), &facts()).0.is_ok());
    // A damaged file is compiled around and replaced.
    let file = std::fs::read_dir(cache.folder()).unwrap().next().unwrap().unwrap().path();
    std::fs::write(&file, b"not compiled code").unwrap();
    let third = engine();
    let (_, how) = third.load_cached(&bytes, limits, Some(&DiskCache::open(&home, &third).unwrap())).unwrap();
    assert_eq!(how, Compilation::Compiled);
    assert_ne!(std::fs::read(&file).unwrap(), b"not compiled code");
    // A folder others may write to is refused: closing it again would be too
    // late, as someone may already have planted code there.
    let shared = tempfile_dir("shared-cache");
    let engine = engine();
    std::fs::create_dir_all(shared.join(engine.fingerprint())).unwrap();
    std::fs::set_permissions(shared.join(engine.fingerprint()), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o700)).unwrap();
    let refused = DiskCache::open(&shared, &engine);
    assert!(matches!(refused, Err(DiskCacheError::NotPrivate(_))), "{refused:?}");
    // Pointed at a folder that holds other things, it touches only its own.
    let elsewhere = tempfile_dir("elsewhere");
    std::fs::create_dir_all(elsewhere.join("Templates")).unwrap();
    std::fs::write(elsewhere.join("fixture.cwasm"), b"someone's").unwrap();
    let cache = DiskCache::open(&elsewhere, &engine).unwrap();
    engine.load_cached(&bytes, limits, Some(&cache)).unwrap();
    assert!(elsewhere.join("Templates").is_dir() && elsewhere.join("fixture.cwasm").is_file());
}

#[test]
fn spares_of_every_policy_together_stay_within_the_engines_budget() {
    let engine = engine();
    engine.keep_spares_above(Duration::ZERO);
    let policies: Vec<_> = (0..5).map(|_| engine.load(&example("small-receipts")).unwrap().with_spares()).collect();
    let held = || policies.iter().map(|p| 2 - p.spares_missing()).sum::<usize>();
    let started = Instant::now();
    while held() < 8 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(held(), 8, "five policies want ten spares; the engine holds at most eight");
    // Taking one makes room for another policy's.
    assert!(policies[0].evaluate(&receipt(), &facts()).0.is_ok());
    drop(policies);
    let fresh = engine.load(&example("small-receipts")).unwrap().with_spares();
    wait_for_spares(&fresh);
}

fn tempfile_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bookkeeper-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn wait_for_spares(policy: &review_e::policy::LoadedPolicy) {
    let started = std::time::Instant::now();
    while policy.spares_missing() > 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the spares were never made again");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn bad_components_are_refused_at_load_with_a_clear_error() {
    let engine = engine();
    let err = engine.load(b"definitely not wasm").unwrap_err();
    assert!(matches!(err, LoadError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("magic bytes"), "{err}");

    // A core module is WebAssembly, but not a component.
    let core = wat::parse_str("(module (func (export \"evaluate\")))").unwrap();
    assert!(matches!(engine.load(&core).unwrap_err(), LoadError::Invalid(_)));

    // A component of another world: exports something else entirely.
    let other_world = wat::parse_str(
        r#"(component
             (core module $m (func (export "f") (result i32) i32.const 1))
             (core instance $i (instantiate $m))
             (func $f (result u32) (canon lift (core func $i "f")))
             (export "hello" (func $f)))"#,
    )
    .unwrap();
    let err = engine.load(&other_world).unwrap_err();
    assert!(matches!(err, LoadError::WrongWorld(_)), "{err}");

    // A component that wants something from the host: refused, naming it.
    let wants_network =
        wat::parse_str(r#"(component (import "open-socket" (func (param "host" string) (result u32))))"#).unwrap();
    let err = engine.load(&wants_network).unwrap_err();
    assert!(matches!(err, LoadError::WrongWorld(_)), "{err}");
    assert!(err.to_string().contains("open-socket"), "{err}");

    let err = engine.load(&hostile("bad-metadata")).unwrap_err();
    assert!(matches!(err, LoadError::BadMetadata(_)), "{err}");

    let small = PolicyEngine::new(Limits { component_bytes: 1024, ..Limits::default() }).unwrap();
    let err = small.load(&example("small-receipts")).unwrap_err();
    assert!(matches!(err, LoadError::TooLarge { max: 1024, .. }), "{err}");
    still_serving(&engine);
}

#[test]
fn a_faulty_policy_escalates_naming_itself_while_the_others_still_decide() {
    let engine = PolicyEngine::new(Limits { deadline: Duration::from_millis(20), ..Limits::default() }).unwrap();
    let set = PolicySet::empty()
        .with(engine.load(&example("small-receipts")).unwrap(), Mode::Enforcing)
        .with(engine.load(&hostile("infinite-loop")).unwrap(), Mode::Enforcing)
        .with(engine.load(&hostile("panic")).unwrap(), Mode::Shadow);
    let combined = set.evaluate(&receipt(), &facts());
    assert_eq!(combined.outcome, Outcome::Escalate);
    assert!(combined.reason.contains("hostile-infinite-loop"), "{}", combined.reason);
    assert!(combined.reason.contains("time limit"), "{}", combined.reason);
    let by_name: HashMap<_, _> = combined.verdicts.iter().map(|v| (v.policy.as_str(), v)).collect();
    assert_eq!(by_name["small-receipts"].outcome, Outcome::Approve);
    assert!(by_name["hostile-panic"].fault.is_some());
    assert_eq!(by_name["hostile-panic"].mode, Mode::Shadow);
    // Without the hostile enforcing policy the receipt is approved.
    let healed = set.without("hostile-infinite-loop").evaluate(&receipt(), &facts());
    assert_eq!(healed.outcome, Outcome::Approve);
}

/// A good policy still loads and decides on the same engine.
fn still_serving(engine: &PolicyEngine) {
    let policy = engine.load(&example("small-receipts")).unwrap();
    let (result, _) = policy.evaluate(&receipt(), &facts());
    assert_eq!(result.unwrap().outcome(), Outcome::Approve);
}

/// A component built against contract 0.1.0, kept as it was built: it must keep
/// working, unchanged, beside components of every later version.
fn contract_0_1_0_fixture() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/contract-0.1.0/small-receipts.wasm"))
        .unwrap()
}

#[test]
fn a_policy_built_against_contract_0_1_0_keeps_working_beside_0_2_0() {
    let engine = engine();
    let old = engine.load(&contract_0_1_0_fixture()).unwrap();
    assert_eq!(old.contract, Contract::V0_1_0);
    let new = engine.load(&example("small-receipts")).unwrap();
    assert_eq!(new.contract, Contract::LATEST);
    assert_ne!(old.digest, new.digest, "the fixture is the old build, not today's");
    let cases = parse_cases(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/contract-0.1.0/cases.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for case in &cases.cases {
        for policy in [&old, &new] {
            let decision = policy.evaluate(&case.proposal, &case.facts).0.unwrap();
            assert!(case.accepts(&decision), "{} ({}): got {decision:?}", case.name, policy.contract);
        }
    }
    // Both in one set, judging the same proposal.
    let set = PolicySet::empty()
        .with(old, Mode::Enforcing)
        .with(engine.load(&example("duplicate-invoice")).unwrap(), Mode::Enforcing);
    assert_eq!(set.evaluate(&receipt(), &facts()).outcome, Outcome::Approve);
}

#[test]
fn facts_added_in_0_2_0_reach_a_0_2_0_policy_and_arrive_as_none_when_unknown() {
    let policy = engine().load(&hostile("tells-facts")).unwrap();
    assert_eq!(policy.contract, Contract::V0_2_0);
    let mut proposal = receipt();
    proposal.document_type = Some("application/pdf".into());
    let mut known = facts();
    known.weekday = Some(3);
    let reason = policy.evaluate(&proposal, &known).0.unwrap().reason().to_string();
    assert_eq!(reason, r#"weekday Some(3), document Some("application/pdf")"#);
    // A decision recorded before the fact existed: none, and the contract says so.
    let recorded = facts();
    assert_eq!(policy.contract.lacking(&recorded), vec!["weekday"]);
    assert_eq!(Contract::V0_1_0.lacking(&recorded), Vec::<&str>::new());
    let reason = policy.evaluate(&receipt(), &recorded).0.unwrap().reason().to_string();
    assert_eq!(reason, "weekday None, document None");
}

#[test]
fn each_component_runs_under_its_own_limits_never_above_the_maxima() {
    let engine = engine();
    let component = example("small-receipts");
    // Granted from what an author asks for, defaults for the rest.
    let asked = LimitsRequest { memory_mib: Some(32), deadline_ms: Some(40), ..Default::default() };
    let granted = asked.grant(engine.defaults(), engine.maxima()).unwrap();
    let policy = engine.load_limited(&component, granted, None).unwrap().policy;
    assert_eq!(policy.limits.memory_bytes, 32 << 20);
    assert_eq!(policy.limits.deadline, Duration::from_millis(40));
    assert_eq!(policy.limits.core_instances, engine.defaults().core_instances);

    // Above the operator's maxima: refused, whether asked for or recorded.
    let greedy = LimitsRequest { memory_mib: Some(4096), ..Default::default() };
    let err = greedy.grant(engine.defaults(), engine.maxima()).unwrap_err();
    assert!(matches!(err, LimitsError::AboveMaximum(_)), "{err}");
    let too_much = Limits { memory_bytes: engine.maxima().memory_bytes + 1, ..*engine.defaults() };
    assert!(matches!(engine.load_limited(&component, too_much, None), Err(LoadError::Limits(_))));

    // A component larger than its own limit, though the engine could take it.
    let tight = Limits { component_bytes: 1024, ..*engine.defaults() };
    let err = engine.load_limited(&component, tight, None).unwrap_err();
    assert!(matches!(err, LoadError::TooLarge { max: 1024, .. }), "{err}");

    // Too little memory to even start: refused at load, saying it does not fit.
    let starved = Limits { memory_bytes: 64 * 1024, ..*engine.defaults() };
    let err = engine.load_limited(&component, starved, None).unwrap_err();
    assert!(matches!(err, LoadError::DoesNotFit { .. }), "{err}");
    assert!(err.to_string().contains("cannot start within its limits"), "{err}");

    // The memory bomb stops at its own cap, not the engine's largest.
    let bomb = patient_engine();
    let small_cap = Limits { memory_bytes: 4 << 20, deadline: Duration::from_secs(5), ..*bomb.defaults() };
    let policy = bomb.load_limited(&hostile("memory-bomb"), small_cap, None).unwrap().policy;
    assert!(matches!(policy.evaluate(&receipt(), &facts()).0, Err(Fault::Trap(_))));
    still_serving(&engine);
}

#[test]
fn a_compiled_component_is_reused_by_another_engine_and_a_bad_artifact_is_ignored() {
    let component = example("duplicate-invoice");
    let first = engine();
    let loaded = first.load_limited(&component, *first.defaults(), None).unwrap();
    let artifact = loaded.compiled.expect("compiled now, so there is an artifact to cache");

    // A new replica with the same engine settings: no compile, same decisions.
    let second = engine();
    assert_eq!(second.fingerprint(), first.fingerprint());
    let reused = second.load_limited(&component, *second.defaults(), Some(&artifact)).unwrap();
    assert!(reused.compiled.is_none(), "the cached artifact was used, not a fresh compile");
    let proposal = Proposal {
        proposal_type: "InvoiceRegistrationProposed".into(),
        invoice_number: Some("F-1".into()),
        ..receipt()
    };
    assert_eq!(
        reused.policy.evaluate(&proposal, &facts()).0.unwrap(),
        loaded.policy.evaluate(&proposal, &facts()).0.unwrap()
    );

    // Garbage, or another component's artifact, is never trusted for this one:
    // garbage does not deserialize, and the cache is keyed by digest.
    let third = engine();
    let recompiled = third.load_limited(&component, *third.defaults(), Some(b"not an artifact")).unwrap();
    assert!(recompiled.compiled.is_some(), "an unusable artifact means compiling");
}
