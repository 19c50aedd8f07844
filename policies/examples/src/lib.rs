//! The example policies of `policies/`, as built components, committed beside this
//! crate and compiled into the binary, so that `bookkeeper up`, the demo and the
//! benchmarks need neither the source tree nor a Rust toolchain.
//!
//! They are built, not hand-made: CI rebuilds each from its source with
//! `bookkeeper policy build` and fails when the bytes differ from the committed
//! ones (`.ci/run`, "the committed example components are their sources, built").
//! After changing a policy, refresh its component:
//! `bookkeeper policy build policies/<name> --out policies/examples/<name>.wasm`.

/// One example policy.
#[derive(Debug, Clone, Copy)]
pub struct Example {
    /// Its name, the folder under `policies/` it is built from.
    pub name: &'static str,
    /// The component.
    pub component: &'static [u8],
}

/// Every example policy, by name.
pub const EXAMPLES: [Example; 4] = [
    Example { name: "duplicate-invoice", component: include_bytes!("../duplicate-invoice.wasm") },
    Example { name: "monthly-budget", component: include_bytes!("../monthly-budget.wasm") },
    Example { name: "small-receipts", component: include_bytes!("../small-receipts.wasm") },
    Example { name: "unusual-vendor", component: include_bytes!("../unusual-vendor.wasm") },
];

/// The example called `name`.
pub fn example(name: &str) -> Option<&'static Example> {
    EXAMPLES.iter().find(|e| e.name == name)
}
