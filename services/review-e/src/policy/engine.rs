//! Compiling, sandboxing and calling one policy component.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bookkeeper_policy_sdk::{Decision, Facts, Metadata, Proposal, MAX_REASON_CHARS};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder,
};

use super::bindings::bookkeeper::policy::types as wit;
use super::bindings::{Policy, PolicyPre};

/// Sandbox limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock budget of one evaluation.
    pub deadline: Duration,
    /// Largest linear memory a policy may grow to, in bytes.
    pub memory_bytes: usize,
    /// Largest component accepted, in bytes.
    pub max_component_bytes: usize,
    /// Most table elements.
    pub table_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(10),
            memory_bytes: 16 * 1024 * 1024,
            max_component_bytes: 8 * 1024 * 1024,
            table_elements: 10_000,
        }
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
    pre: PolicyPre<StoreState>,
    engine: PolicyEngine,
}

impl std::fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPolicy").field("metadata", &self.metadata).field("digest", &self.digest).finish()
    }
}

struct StoreState {
    limits: StoreLimits,
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
    limits: Limits,
    compiled: Mutex<HashMap<String, PolicyPre<StoreState>>>,
}

/// Epoch ticks per second; the deadline is counted in ticks.
const TICK: Duration = Duration::from_millis(1);

impl PolicyEngine {
    /// An engine with these limits. Starts a ticker thread that ends with the engine.
    pub fn new(limits: Limits) -> anyhow::Result<PolicyEngine> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(64)
            .total_core_instances(64)
            .total_memories(64)
            .total_tables(64)
            .max_memory_size(limits.memory_bytes)
            .table_elements(limits.table_elements)
            .max_core_instances_per_component(8)
            .max_memories_per_component(2)
            .max_tables_per_component(4)
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
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
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
        Ok(PolicyEngine { inner: Arc::new(Inner { engine, linker, limits, compiled: Mutex::new(HashMap::new()) }) })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// SHA-256 of component bytes, as policies are identified.
    pub fn digest(bytes: &[u8]) -> String {
        let hash = Sha256::digest(bytes);
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Validates, compiles and pre-instantiates a component, then asks it for its
    /// metadata. Refuses anything that is not a well-behaved policy.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedPolicy, LoadError> {
        let limits = &self.inner.limits;
        if bytes.len() > limits.max_component_bytes {
            return Err(LoadError::TooLarge { actual: bytes.len(), max: limits.max_component_bytes });
        }
        let digest = Self::digest(bytes);
        let cached = self.inner.compiled.lock().unwrap_or_else(|p| p.into_inner()).get(&digest).cloned();
        let pre = match cached {
            Some(pre) => pre,
            None => {
                if !bytes.starts_with(b"\0asm") {
                    return Err(LoadError::Invalid("it does not start with the WebAssembly magic bytes".into()));
                }
                let component =
                    Component::new(&self.inner.engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
                let instance_pre = self
                    .inner
                    .linker
                    .instantiate_pre(&component)
                    .map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
                let pre = PolicyPre::new(instance_pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;
                self.inner.compiled.lock().unwrap_or_else(|p| p.into_inner()).insert(digest.clone(), pre.clone());
                pre
            }
        };
        let (mut store, instance) = self.instantiate(&pre).map_err(|f| LoadError::BadMetadata(f.to_string()))?;
        let m = instance.call_metadata(&mut store).map_err(|e| LoadError::BadMetadata(trap_text(&e, limits)))?;
        let metadata =
            Metadata { name: m.name, version: m.version, description: m.description, applies_to: m.applies_to };
        check_metadata(&metadata)?;
        Ok(LoadedPolicy { metadata, digest, pre, engine: self.clone() })
    }

    fn instantiate(&self, pre: &PolicyPre<StoreState>) -> Result<(Store<StoreState>, Policy), Fault> {
        let limits = &self.inner.limits;
        let state = StoreState {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .table_elements(limits.table_elements)
                .instances(8)
                .tables(4)
                .memories(2)
                .trap_on_grow_failure(true)
                .build(),
        };
        let mut store = Store::new(&self.inner.engine, state);
        store.limiter(|s| &mut s.limits);
        let ticks = (limits.deadline.as_micros() / TICK.as_micros()).max(1) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let instance = pre.instantiate(&mut store).map_err(|e| Fault::Instantiate(format!("{e:#}")))?;
        Ok((store, instance))
    }
}

impl LoadedPolicy {
    /// Evaluates the policy once, in a fresh instance. Returns the decision and how
    /// long it took, or the fault.
    pub fn evaluate(&self, proposal: &Proposal, facts: &Facts) -> (Result<Decision, Fault>, Duration) {
        let started = Instant::now();
        let result = self.evaluate_inner(proposal, facts);
        (result, started.elapsed())
    }

    fn evaluate_inner(&self, proposal: &Proposal, facts: &Facts) -> Result<Decision, Fault> {
        let (mut store, instance) = self.engine.instantiate(&self.pre)?;
        let decision = instance
            .call_evaluate(&mut store, &proposal_to_wit(proposal), &facts_to_wit(facts))
            .map_err(|e| classify(&e, &self.engine.inner.limits))?;
        let decision = match decision {
            wit::Decision::Approve(r) => Decision::Approve(r),
            wit::Decision::Reject(r) => Decision::Reject(r),
            wit::Decision::Escalate(r) => Decision::Escalate(r),
        };
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

fn proposal_to_wit(p: &Proposal) -> wit::Proposal {
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
    }
}

fn facts_to_wit(f: &Facts) -> wit::Facts {
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
    }
}
