//! The policy sandbox against real components: the example policies, and hostile
//! ones built from `tests/hostile` (one cargo feature per misdeed) or written in WAT.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bookkeeper_policy_sdk::testing::parse_cases;
use bookkeeper_policy_sdk::{Facts, Money, Outcome, Proposal, Vendor};
use review_e::policy::toolchain;
use review_e::policy::{Fault, Limits, LoadError, Mode, PolicyEngine, PolicySet};

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

    let small = PolicyEngine::new(Limits { max_component_bytes: 1024, ..Limits::default() }).unwrap();
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
