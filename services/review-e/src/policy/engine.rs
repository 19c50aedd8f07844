//! Compiling, sandboxing and calling one policy component.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bookkeeper_policy_sdk::{Decision, Facts, Metadata, Proposal, MAX_REASON_CHARS};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder,
};

use super::bindings::{v0_1, v0_2};
use super::limits::{Limits, LimitsError, RecordedLimits};

/// A released version of the `bookkeeper:policy` contract. Review-E serves every
/// one at once: a component is judged through the version it was built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Contract {
    /// The first release.
    V0_1_0,
    /// Adds `proposal.document-type` and `facts.weekday`.
    V0_2_0,
}

impl Contract {
    /// Every released version, oldest first.
    pub const ALL: [Contract; 2] = [Contract::V0_1_0, Contract::V0_2_0];

    /// The newest: what `policy new` scaffolds against.
    pub const LATEST: Contract = Contract::V0_2_0;

    /// `0.1.0`, ...
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1_0 => "0.1.0",
            Contract::V0_2_0 => "0.2.0",
        }
    }

    /// The facts this version has that `facts` lack (a decision recorded before
    /// they existed): the policy is given `none` for each.
    pub fn lacking(self, facts: &Facts) -> Vec<&'static str> {
        match self {
            Contract::V0_1_0 => Vec::new(),
            Contract::V0_2_0 => facts.lacking(),
        }
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.version())
    }
}

/// Why a component was refused at load. The active policy set is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Larger than [`Limits::max_component_bytes`].
    #[error("the component is {actual} bytes; the limit is {max} bytes")]
    TooLarge { actual: usize, max: usize },
    /// Not a WebAssembly component (or not valid).
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// A valid component that does not fit the `bookkeeper:policy` world, or that
    /// imports something (policies may import nothing).
    #[error("the component does not fit the bookkeeper:policy world: {0}")]
    WrongWorld(String),
    /// `metadata()` failed or answered nonsense.
    #[error("the policy's metadata is unusable: {0}")]
    BadMetadata(String),
    /// The limits asked for cannot be granted.
    #[error(transparent)]
    Limits(#[from] LimitsError),
    /// The component cannot start within its limits (too much initial memory,
    /// too many core instances, too slow to start).
    #[error("the component cannot start within its limits ({limits}): {reason}")]
    DoesNotFit { limits: String, reason: String },
}

/// Why one evaluation produced no usable decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// Ran past its deadline.
    #[error("ran past its {0:?} time limit")]
    Timeout(Duration),
    /// Trapped: a panic, unreachable, stack overflow, out of memory...
    #[error("trapped: {0}")]
    Trap(String),
    /// Answered with a reason longer than allowed.
    #[error("answered with a {0}-character reason (the limit is {MAX_REASON_CHARS})")]
    ReasonTooLong(usize),
    /// Could not even be instantiated (e.g. out of sandbox slots).
    #[error("could not be started: {0}")]
    Instantiate(String),
}

/// A compiled, pre-instantiated policy, ready to evaluate.
#[derive(Clone)]
pub struct LoadedPolicy {
    /// What the policy says about itself.
    pub metadata: Metadata,
    /// Lower-case hex SHA-256 of the component bytes.
    pub digest: String,
    /// The contract version it was built against.
    pub contract: Contract,
    /// The limits it runs under.
    pub limits: Limits,
    pre: Pre,
    engine: PolicyEngine,
    /// For a component slow to instantiate: fresh instances made ahead of need.
    spares: Option<Arc<Spares>>,
}

impl std::fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("metadata", &self.metadata)
            .field("digest", &self.digest)
            .field("contract", &self.contract)
            .field("limits", &self.limits)
            .finish()
    }
}

/// A component pre-instantiated through the contract version it speaks.
#[derive(Clone)]
enum Pre {
    V0_1(v0_1::PolicyPre<StoreState>),
    V0_2(v0_2::PolicyPre<StoreState>),
}

/// One fresh instance, through its contract version.
enum Instance {
    V0_1(v0_1::Policy),
    V0_2(v0_2::Policy),
}

impl Pre {
    fn contract(&self) -> Contract {
        match self {
            Pre::V0_1(_) => Contract::V0_1_0,
            Pre::V0_2(_) => Contract::V0_2_0,
        }
    }
}

struct StoreState {
    limits: StoreLimits,
}

/// A fresh instance in its own store, never called.
type Ready = (Store<StoreState>, Instance);

/// An instance made ahead of need, and how long making it took (counted
/// against the deadline of the evaluation that takes it, as it would have been).
struct Spare {
    ready: Ready,
    made_in: Duration,
}

/// Instances of one policy in force made ahead of need, for a component whose
/// instantiation is slow (an interpreter linked from ~40 core modules sets up
/// thousands of function references per instance: about half a millisecond).
/// Each is fresh and never called, so taking one is exactly like making one,
/// only the making happened before the proposal arrived. They are made on the
/// engine's `policy-spares` thread and dropped with the policy.
struct Spares {
    ready: Mutex<Vec<Spare>>,
    /// A refill is queued: one is enough.
    queued: std::sync::atomic::AtomicBool,
    /// When an evaluation last ended: spares are made only after a quiet
    /// moment, never beside a burst of evaluations (making one beside a call
    /// slows the call more than the spare saves).
    last_used: Mutex<Instant>,
    /// Spare instances of the whole engine, which this one's count in.
    budget: Arc<std::sync::atomic::AtomicUsize>,
}

impl Spares {
    fn take(&self) -> Option<Spare> {
        let spare = self.ready.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if spare.is_some() {
            self.budget.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        spare
    }

    fn len(&self) -> usize {
        self.ready.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        let held = self.ready.get_mut().map(|r| r.len()).unwrap_or_else(|p| p.into_inner().len());
        self.budget.fetch_sub(held, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Spare instances kept per slow policy: proposals arrive one at a time, and
/// each spare holds a sandbox slot.
const SPARES: usize = 2;

/// Spare instances the whole engine may hold, so spares never take the slots
/// evaluations, backtests and publications need (a Python instance is ~40 of
/// the pool's 2,048 core instances).
const SPARE_BUDGET: usize = 8;

/// Instantiation slower than this earns a policy spares (a Rust policy takes a
/// few microseconds, a JavaScript one about 15, a Python one about 500).
const SLOW_INSTANTIATION: Duration = Duration::from_micros(100);

/// How long after an evaluation a spare may be made.
const QUIET: Duration = Duration::from_millis(2);

/// Making a spare that takes longer than this is given up: a component's start
/// functions must not run for long where no evaluation is waiting.
const SPARE_MAKING_LIMIT: Duration = Duration::from_millis(20);

/// A request to top up a policy's spares.
struct Refill {
    spares: std::sync::Weak<Spares>,
    pre: Pre,
    limits: Limits,
}

/// The wasmtime engine shared by every policy, with its epoch ticker and a
/// compile cache keyed by digest. Cheap to clone.
#[derive(Clone)]
pub struct PolicyEngine {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<StoreState>,
    defaults: Limits,
    maxima: Limits,
    fingerprint: String,
    compiled: Mutex<Compiled>,
    refills: std::sync::mpsc::Sender<Refill>,
    /// Instantiation slower than this, in microseconds, earns spares.
    spares_above_us: std::sync::atomic::AtomicU64,
    /// Spare instances held, against [`SPARE_BUDGET`].
    spare_count: Arc<std::sync::atomic::AtomicUsize>,
}

/// Compiled components by digest, the most recent few: a replaced policy's
/// code is dropped once nothing holds it.
#[derive(Default)]
struct Compiled {
    by_digest: HashMap<String, Pre>,
    order: VecDeque<String>,
}

/// How many compiled components the engine keeps beyond those in use.
const COMPILED_KEPT: usize = 16;

impl Compiled {
    fn get(&self, digest: &str) -> Option<Pre> {
        self.by_digest.get(digest).cloned()
    }

    fn insert(&mut self, digest: String, pre: Pre) {
        if self.by_digest.insert(digest.clone(), pre).is_none() {
            self.order.push_back(digest);
        }
        while self.order.len() > COMPILED_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.by_digest.remove(&old);
            }
        }
    }
}

/// Epoch ticks per second; the deadline is counted in ticks.
const TICK: Duration = Duration::from_millis(1);

/// Table elements a component may have: CPython's function table is large.
const TABLE_ELEMENTS: usize = 100_000;

/// What loading a component produced: the policy, and the compiled artifact
/// when it was compiled now (for the caller to cache by digest).
pub struct Loaded {
    /// The policy.
    pub policy: LoadedPolicy,
    /// `Some` when the component was compiled rather than found compiled.
    pub compiled: Option<Vec<u8>>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("policy", &self.policy)
            .field("compiled_bytes", &self.compiled.as_ref().map(Vec::len))
            .finish()
    }
}

impl PolicyEngine {
    /// An engine whose components get `defaults` unless they ask for more, up to
    /// the built-in maxima (or `defaults`, where those are larger). Starts a
    /// ticker thread that ends with the engine.
    pub fn new(defaults: Limits) -> anyhow::Result<PolicyEngine> {
        PolicyEngine::with_maxima(defaults, Limits::default_maxima().max(defaults))
    }

    /// An engine with the operator's `defaults` and `maxima`.
    pub fn with_maxima(defaults: Limits, maxima: Limits) -> anyhow::Result<PolicyEngine> {
        if let Some(above) = defaults.above(&maxima) {
            anyhow::bail!("the default policy limits are above the maxima: {above}");
        }
        let mut pool = PoolingAllocationConfig::default();
        // Slots for several large components at once (a Python policy alone
        // takes about 40 core instances), so a concurrent backtest or publish
        // never starves the deciding subscription.
        pool.total_component_instances(256)
            .total_core_instances(2048)
            .total_memories(256)
            .total_tables(512)
            .max_memory_size(maxima.memory_bytes)
            .table_elements(TABLE_ELEMENTS)
            .max_core_instances_per_component(maxima.core_instances)
            .max_memories_per_component(maxima.core_instances)
            .max_tables_per_component(maxima.core_instances)
            // Reset a finished instance's memory by zeroing, not by returning it
            // to the kernel: policies touch a few pages, and madvise + page faults
            // cost more than the whole evaluation.
            .linear_memory_keep_resident(256 * 1024)
            .table_keep_resident(64 * 1024);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(256 * 1024)
            // A large initial memory (an interpreter's heap) is mapped
            // copy-on-write from the compiled image, not copied per instance.
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let fingerprint = {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut hasher);
            format!("wasmtime-{:016x}", hasher.finish())
        };
        // Deliberately empty: policies may import nothing.
        let linker = Linker::new(&engine);
        let weak = engine.weak();
        std::thread::Builder::new().name("policy-epoch".into()).spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })?;
        let (refills, requests) = std::sync::mpsc::channel::<Refill>();
        let spare_engine = engine.clone();
        // Ends when the engine (the only sender) is dropped.
        std::thread::Builder::new().name("policy-spares".into()).spawn(move || {
            for refill in requests {
                let Some(spares) = refill.spares.upgrade() else { continue };
                spares.queued.store(false, std::sync::atomic::Ordering::Relaxed);
                while spares.len() < SPARES {
                    let quiet = spares.last_used.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
                    if quiet < QUIET {
                        std::thread::sleep(QUIET - quiet);
                        continue;
                    }
                    if let Some(spare) = make_spare(&spare_engine, &refill.pre, &refill.limits, &spares.budget) {
                        spares.ready.lock().unwrap_or_else(|p| p.into_inner()).push(spare);
                    } else {
                        // No budget, no slot, or too slow: the evaluation makes
                        // its own instance, as without spares.
                        break;
                    }
                }
            }
        })?;
        Ok(PolicyEngine {
            inner: Arc::new(Inner {
                engine,
                linker,
                defaults,
                maxima,
                fingerprint,
                compiled: Mutex::new(Compiled::default()),
                refills,
                spares_above_us: std::sync::atomic::AtomicU64::new(SLOW_INSTANTIATION.as_micros() as u64),
                spare_count: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            }),
        })
    }

    /// Components loaded from now on keep spare instances when making one
    /// takes longer than `threshold` (100 us unless set; zero: every one).
    pub fn keep_spares_above(&self, threshold: Duration) {
        let micros = u64::try_from(threshold.as_micros()).unwrap_or(u64::MAX);
        self.inner.spares_above_us.store(micros, std::sync::atomic::Ordering::Relaxed);
    }

    /// The limits a component gets when its author asks for nothing.
    pub fn defaults(&self) -> &Limits {
        &self.inner.defaults
    }

    /// The most any component may ask for.
    pub fn maxima(&self) -> &Limits {
        &self.inner.maxima
    }

    /// Identifies the compiler and its settings: a compiled artifact is only
    /// usable by an engine with the same fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }

    /// Whether this engine holds the compilation of the component `digest`.
    pub fn has_compiled(&self, digest: &str) -> bool {
        self.inner.compiled.lock().unwrap_or_else(|p| p.into_inner()).by_digest.contains_key(digest)
    }

    /// SHA-256 of component bytes, as policies are identified.
    pub fn digest(bytes: &[u8]) -> String {
        let hash = Sha256::digest(bytes);
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Validates, compiles and pre-instantiates a component under the default
    /// limits, then asks it for its metadata.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedPolicy, LoadError> {
        Ok(self.load_limited(bytes, self.inner.defaults, None)?.policy)
    }

    /// Validates, compiles (or takes `artifact`, this engine's compilation of the
    /// same bytes) and pre-instantiates a component under `limits`, then asks it
    /// for its metadata. Refuses anything that is not a well-behaved policy.
    ///
    /// `artifact` must come from [`Loaded::compiled`] of an engine with the same
    /// [`fingerprint`](Self::fingerprint), kept where only Review-E can write:
    /// it is native code, mapped and run without being checked again. One that
    /// does not deserialize is ignored and the component compiled.
    pub fn load_limited(&self, bytes: &[u8], limits: Limits, artifact: Option<&[u8]>) -> Result<Loaded, LoadError> {
        if let Some(above) = limits.above(&self.inner.maxima) {
            return Err(LoadError::Limits(LimitsError::AboveMaximum(above)));
        }
        if bytes.len() > limits.component_bytes {
            return Err(LoadError::TooLarge { actual: bytes.len(), max: limits.component_bytes });
        }
        let digest = Self::digest(bytes);
        let cached = self.inner.compiled.lock().unwrap_or_else(|p| p.into_inner()).get(&digest);
        let (pre, compiled) = match cached {
            Some(pre) => (pre, None),
            None => {
                if !bytes.starts_with(b"\0asm") {
                    return Err(LoadError::Invalid("it does not start with the WebAssembly magic bytes".into()));
                }
                // SAFETY: `artifact` is this engine's own serialization of these
                // bytes, read back from storage only Review-E's role can write
                // (the caller's contract above); wasmtime still checks that it was
                // made by a compatible engine and refuses it otherwise.
                let found = artifact.and_then(|a| match unsafe { Component::deserialize(&self.inner.engine, a) } {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!(%digest, error = %e, "cached compilation unusable; compiling again");
                        None
                    }
                });
                let (component, compiled) = match found {
                    Some(c) => (c, None),
                    None => {
                        let c = Component::new(&self.inner.engine, bytes)
                            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
                        let serialized = c.serialize().ok();
                        (c, serialized)
                    }
                };
                let pre = self.pre_instantiate(&component)?;
                self.inner.compiled.lock().unwrap_or_else(|p| p.into_inner()).insert(digest.clone(), pre.clone());
                (pre, compiled)
            }
        };
        let (mut store, instance) = self.instantiate(&pre, &limits).map_err(|f| LoadError::DoesNotFit {
            limits: RecordedLimits::from(limits).describe(),
            reason: f.to_string(),
        })?;
        let m = match instance {
            Instance::V0_1(i) => i.call_metadata(&mut store).map(|m| (m.name, m.version, m.description, m.applies_to)),
            Instance::V0_2(i) => i.call_metadata(&mut store).map(|m| (m.name, m.version, m.description, m.applies_to)),
        }
        .map_err(|e| LoadError::BadMetadata(trap_text(&e, &limits)))?;
        let metadata = Metadata { name: m.0, version: m.1, description: m.2, applies_to: m.3 };
        check_metadata(&metadata)?;
        let contract = pre.contract();
        drop(store);
        let policy = LoadedPolicy { metadata, digest, contract, limits, pre, engine: self.clone(), spares: None };
        Ok(Loaded { policy, compiled })
    }

    /// Pre-instantiates through the newest contract version the component fits.
    fn pre_instantiate(&self, component: &Component) -> Result<Pre, LoadError> {
        let instance_pre =
            self.inner.linker.instantiate_pre(component).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
        if let Ok(pre) = v0_2::PolicyPre::new(instance_pre.clone()) {
            return Ok(Pre::V0_2(pre));
        }
        // The oldest version's error is the one to show: a component that fits
        // none is most often built against something else entirely.
        v0_1::PolicyPre::new(instance_pre).map(Pre::V0_1).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))
    }

    fn instantiate(&self, pre: &Pre, limits: &Limits) -> Result<Ready, Fault> {
        new_instance(&self.inner.engine, pre, limits)
    }
}

/// Ticks of the epoch clock in `deadline`, as a store's deadline counts them.
fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_micros() / TICK.as_micros()).max(1) as u64 + 1
}

/// One fresh instance of `pre` in its own store, under `limits`.
fn new_instance(engine: &Engine, pre: &Pre, limits: &Limits) -> Result<Ready, Fault> {
    let instances = limits.core_instances as usize;
    let state = StoreState {
        limits: StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .table_elements(TABLE_ELEMENTS)
            .instances(instances)
            .tables(instances)
            .memories(instances)
            .trap_on_grow_failure(true)
            .build(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    store.set_epoch_deadline(deadline_ticks(limits.deadline));
    store.epoch_deadline_trap();
    let instance = match pre {
        Pre::V0_1(p) => p.instantiate(&mut store).map(Instance::V0_1),
        Pre::V0_2(p) => p.instantiate(&mut store).map(Instance::V0_2),
    }
    .map_err(|e| match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => Fault::Timeout(limits.deadline),
        _ => Fault::Instantiate(format!("{e:#}")),
    })?;
    Ok((store, instance))
}

/// One spare within `budget`, or none (no budget, no slot, or too slow to make).
fn make_spare(engine: &Engine, pre: &Pre, limits: &Limits, budget: &std::sync::atomic::AtomicUsize) -> Option<Spare> {
    use std::sync::atomic::Ordering;
    if budget.fetch_add(1, Ordering::Relaxed) >= SPARE_BUDGET {
        budget.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    let started = Instant::now();
    let limited = Limits { deadline: limits.deadline.min(SPARE_MAKING_LIMIT), ..*limits };
    match new_instance(engine, pre, &limited) {
        Ok(ready) => Some(Spare { ready, made_in: started.elapsed() }),
        Err(_) => {
            budget.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }
}

impl LoadedPolicy {
    /// This policy keeping spare instances if its instantiation is slow (by
    /// the fastest of three tries): for the policies in force, where proposals
    /// wait for them; never for a backtest's or a candidate's.
    pub fn with_spares(mut self) -> LoadedPolicy {
        if self.spares.is_some() {
            return self;
        }
        let mut fastest = Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            if self.engine.instantiate(&self.pre, &self.limits).is_err() {
                return self;
            }
            fastest = fastest.min(started.elapsed());
        }
        let threshold = self.engine.inner.spares_above_us.load(std::sync::atomic::Ordering::Relaxed);
        if threshold > 0 && fastest.as_micros() <= u128::from(threshold) {
            return self;
        }
        tracing::debug!(policy = %self.metadata.name, instantiation_us = fastest.as_micros() as u64,
            "policy slow to instantiate: keeping spares");
        let spares = Arc::new(Spares {
            ready: Mutex::new(Vec::new()),
            queued: std::sync::atomic::AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
            budget: self.engine.inner.spare_count.clone(),
        });
        self.spares = Some(spares);
        self.refill();
        self
    }

    /// Asks the spares thread to top this policy's spares up (once, however
    /// often asked before it gets to it).
    fn refill(&self) {
        let Some(spares) = &self.spares else { return };
        *spares.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        if !spares.queued.swap(true, std::sync::atomic::Ordering::Relaxed) {
            // Never fails while the engine lives; a lost request only means no spare.
            let _ = self.engine.inner.refills.send(Refill {
                spares: Arc::downgrade(spares),
                pre: self.pre.clone(),
                limits: self.limits,
            });
        }
    }

    /// Evaluates the policy once, in a fresh instance. Returns the decision and how
    /// long it took, or the fault.
    pub fn evaluate(&self, proposal: &Proposal, facts: &Facts) -> (Result<Decision, Fault>, Duration) {
        let started = Instant::now();
        let result = self.evaluate_inner(proposal, facts);
        (result, started.elapsed())
    }

    /// One fresh instance, without calling it: what instantiation alone costs
    /// (the benchmarks report it apart from the call).
    pub fn instantiate_only(&self) -> Result<(), Fault> {
        let made = self.fresh_instance().map(drop);
        self.refill();
        made
    }

    /// Whether this policy keeps spare instances (its instantiation is slow).
    pub fn keeps_spares(&self) -> bool {
        self.spares.is_some()
    }

    /// Spare instances not yet made again (0 for a policy that keeps none).
    pub fn spares_missing(&self) -> usize {
        self.spares.as_ref().map_or(0, |s| SPARES.saturating_sub(s.len()))
    }

    /// What it costs to make one instance, spares or not (the benchmarks
    /// report it beside the instantiation a decision waits for).
    pub fn make_instance_only(&self) -> Result<(), Fault> {
        self.engine.instantiate(&self.pre, &self.limits).map(drop)
    }

    /// A fresh, never-called instance: a spare if one is ready, else made
    /// now; either way the spares are topped up. A spare's deadline is what
    /// is left of the policy's once the time its making took is counted, as
    /// instantiation always counts against it.
    fn fresh_instance(&self) -> Result<Ready, Fault> {
        let Some(spares) = &self.spares else { return self.engine.instantiate(&self.pre, &self.limits) };
        // Made again once this evaluation is over (see `refill`'s callers):
        // making one beside the call slows the call more than it saves.
        match spares.take() {
            Some(Spare { ready: (mut store, instance), made_in }) => {
                let left = self.limits.deadline.saturating_sub(made_in);
                store.set_epoch_deadline(deadline_ticks(left));
                Ok((store, instance))
            }
            None => self.engine.instantiate(&self.pre, &self.limits),
        }
    }

    /// Evaluates once, timing instantiation and the call apart (the
    /// benchmarks report them separately).
    pub fn evaluate_split(&self, proposal: &Proposal, facts: &Facts) -> (Result<Decision, Fault>, Duration, Duration) {
        let started = Instant::now();
        let (mut store, instance) = match self.fresh_instance() {
            Ok(ready) => ready,
            Err(fault) => return (Err(fault), started.elapsed(), Duration::ZERO),
        };
        let instantiated = started.elapsed();
        let result = self.call(&mut store, instance, proposal, facts);
        let called = started.elapsed() - instantiated;
        drop(store);
        self.refill();
        (result, instantiated, called)
    }

    fn evaluate_inner(&self, proposal: &Proposal, facts: &Facts) -> Result<Decision, Fault> {
        let result =
            self.fresh_instance().and_then(|(mut store, instance)| self.call(&mut store, instance, proposal, facts));
        // The instance is gone: its slot is free for the spare made next, and
        // nothing is being made while the policy runs.
        self.refill();
        result
    }

    fn call(
        &self,
        mut store: &mut Store<StoreState>,
        instance: Instance,
        proposal: &Proposal,
        facts: &Facts,
    ) -> Result<Decision, Fault> {
        let limits = &self.limits;
        let decision = match instance {
            Instance::V0_1(i) => {
                i.call_evaluate(&mut store, &v0_1_proposal(proposal), &v0_1_facts(facts)).map(|d| match d {
                    v0_1::bookkeeper::policy::types::Decision::Approve(r) => Decision::Approve(r),
                    v0_1::bookkeeper::policy::types::Decision::Reject(r) => Decision::Reject(r),
                    v0_1::bookkeeper::policy::types::Decision::Escalate(r) => Decision::Escalate(r),
                })
            }
            Instance::V0_2(i) => {
                i.call_evaluate(&mut store, &v0_2_proposal(proposal), &v0_2_facts(facts)).map(|d| match d {
                    v0_2::bookkeeper::policy::types::Decision::Approve(r) => Decision::Approve(r),
                    v0_2::bookkeeper::policy::types::Decision::Reject(r) => Decision::Reject(r),
                    v0_2::bookkeeper::policy::types::Decision::Escalate(r) => Decision::Escalate(r),
                })
            }
        }
        .map_err(|e| classify(&e, limits))?;
        let chars = decision.reason().chars().count();
        if chars > MAX_REASON_CHARS {
            return Err(Fault::ReasonTooLong(chars));
        }
        Ok(decision)
    }
}

fn classify(e: &wasmtime::Error, limits: &Limits) -> Fault {
    if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
        return Fault::Timeout(limits.deadline);
    }
    Fault::Trap(trap_text(e, limits))
}

fn trap_text(e: &wasmtime::Error, limits: &Limits) -> String {
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => format!("ran past its {:?} time limit", limits.deadline),
        Some(trap) => trap.to_string(),
        None => {
            // The first line names the cause; the rest is a wasm backtrace.
            let text = format!("{e:#}");
            text.lines().next().unwrap_or_default().to_string()
        }
    }
}

fn check_metadata(m: &Metadata) -> Result<(), LoadError> {
    let bad = |why: &str| Err(LoadError::BadMetadata(why.into()));
    if m.name.trim().is_empty() || m.name.len() > 100 {
        return bad("the name must be 1-100 characters");
    }
    if !m.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
        return bad("the name may contain only letters, digits, '-', '_' and '.'");
    }
    if m.version.trim().is_empty() || m.version.len() > 50 {
        return bad("the version must be 1-50 characters");
    }
    if m.description.len() > 1000 {
        return bad("the description is longer than 1000 characters");
    }
    if m.applies_to.is_empty() || m.applies_to.len() > 50 || m.applies_to.iter().any(|t| t.is_empty() || t.len() > 128)
    {
        return bad("applies-to must list 1-50 proposal types (or \"*\")");
    }
    Ok(())
}

/// The wire conversions of one contract version; each version's bindings are
/// their own types, so the same mapping is spelled once per version.
macro_rules! conversions {
    ($proposal:ident, $facts:ident, $($wit:ident)::+, |$p:ident| { $($proposal_extra:tt)* }, |$f:ident| { $($facts_extra:tt)* }) => {
        fn $proposal($p: &Proposal) -> $($wit)::+::Proposal {
            use $($wit)::+ as wit;
            let p = $p;
            wit::Proposal {
                proposal_type: p.proposal_type.clone(),
                correlation_id: p.correlation_id.clone(),
                proposed_by: p.proposed_by.clone(),
                requested_by: p.requested_by.clone(),
                amount: p.amount.as_ref().map(|m| wit::Money { minor: m.minor, currency: m.currency.clone() }),
                vendor: p
                    .vendor
                    .as_ref()
                    .map(|v| wit::Vendor { name: v.name.clone(), organization_number: v.organization_number.clone() }),
                account: p.account.clone(),
                description: p.description.clone(),
                invoice_number: p.invoice_number.clone(),
                invoice_date: p.invoice_date.clone(),
                due_date: p.due_date.clone(),
                has_document: p.has_document,
                payload_json: p.payload_json.clone(),
                $($proposal_extra)*
            }
        }

        fn $facts($f: &Facts) -> $($wit)::+::Facts {
            use $($wit)::+ as wit;
            let f = $f;
            wit::Facts {
                today: f.today.clone(),
                vendor_history: wit::VendorHistory {
                    payments: f.vendor_history.payments,
                    total_minor: f.vendor_history.total_minor,
                    largest_minor: f.vendor_history.largest_minor,
                    last_paid: f.vendor_history.last_paid.clone(),
                },
                account_month_to_date_minor: f.account_month_to_date_minor,
                duplicate_invoice_registered: f.duplicate_invoice_registered,
                duplicate_invoice_proposed: f.duplicate_invoice_proposed,
                requester_proposals_last_30_days: f.requester_proposals_last_30_days,
                requester_proposals_today: f.requester_proposals_today,
                $($facts_extra)*
            }
        }
    };
}

conversions!(v0_1_proposal, v0_1_facts, v0_1::bookkeeper::policy::types, |p| {}, |f| {});
conversions!(
    v0_2_proposal,
    v0_2_facts,
    v0_2::bookkeeper::policy::types,
    |p| { document_type: p.document_type.clone(), },
    |f| { weekday: f.weekday, }
);
