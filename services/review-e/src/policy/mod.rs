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
//! - **Bounded.** A deadline per evaluation (epoch interruption), a memory cap,
//!   one instance, bounded tables, a bounded component size and reason length.
//!   A policy that breaks any of them yields a fault naming the policy and the
//!   cause, which the caller turns into an escalation; the engine is unharmed.

mod engine;
mod set;
pub mod toolchain;

pub use engine::{Fault, Limits, LoadError, LoadedPolicy, PolicyEngine};
pub use set::{combine, Combined, Mode, PolicySet, Verdict};

/// The WIT contract, as host bindings.
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../../policy-sdk/wit",
        world: "policy",
    });
}
