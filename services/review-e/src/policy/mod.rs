//! The policy sandbox: loads approval policies (WebAssembly components exporting
//! the `bookkeeper:policy` world) and evaluates them under strict limits.
//!
//! - **Nothing to reach.** The linker is empty: a component that imports anything
//!   (WASI clocks, random, files, sockets, or anything else) is refused at load.
//!   A policy sees only its arguments, so a decision is a pure function of
//!   (policy digest, proposal, facts) and can be re-run to explain it.
//! - **Compile once, instantiate fresh.** A component is compiled when it is
//!   loaded (cached by digest) and pre-instantiated; every evaluation gets a new
//!   `Store` and instance, so nothing leaks from one proposal to the next.
//! - **Bounded, per component.** A deadline per evaluation (epoch interruption),
//!   a memory cap, a core-instance count and a component size, each the
//!   component's own ([`Limits`]: asked for by its author, never above the
//!   operator's maxima), and a bounded reason length.
//! - **Every contract version.** A component built against any released
//!   `bookkeeper:policy` version is judged through that version ([`Contract`]).
//!   A policy that breaks any of them yields a fault naming the policy and the
//!   cause, which the caller turns into an escalation; the engine is unharmed.

mod disk_cache;
mod engine;
mod limits;
mod set;
pub mod toolchain;

pub use disk_cache::{Compilation, DiskCache, DiskCacheError};
pub use engine::{Contract, Fault, LoadError, Loaded, LoadedPolicy, PolicyEngine};
pub use limits::{LimitAbove, Limits, LimitsError, LimitsRequest, RecordedLimits};
pub use set::{combine, Combined, Mode, PolicySet, Verdict};

/// The WIT contract, every released version, as host bindings.
pub(crate) mod bindings {
    /// `bookkeeper:policy@0.1.0`, frozen.
    pub mod v0_1 {
        wasmtime::component::bindgen!({
            path: "../../policy-sdk/wit-0.1.0",
            world: "policy",
        });
    }

    /// `bookkeeper:policy@0.2.0`, the newest.
    pub mod v0_2 {
        wasmtime::component::bindgen!({
            path: "../../policy-sdk/wit",
            world: "policy",
        });
    }
}
