//! A policy that misbehaves in the way its cargo feature names. Without a feature
//! it approves everything. Built by Review-E's tests, never deployed.

use bookkeeper_policy_sdk::{Decision, Facts, Metadata, Policy, Proposal};

pub struct Hostile;

const NAME: &str = if cfg!(feature = "infinite-loop") {
    "hostile-infinite-loop"
} else if cfg!(feature = "memory-bomb") {
    "hostile-memory-bomb"
} else if cfg!(feature = "deep-recursion") {
    "hostile-deep-recursion"
} else if cfg!(feature = "panic") {
    "hostile-panic"
} else if cfg!(feature = "long-reason") {
    "hostile-long-reason"
} else if cfg!(feature = "remembers") {
    "hostile-remembers"
} else if cfg!(feature = "tells-facts") {
    "tells-facts"
} else {
    "hostile-none"
};

/// Recurses `depth` times; `black_box` keeps the optimiser from making a loop of it.
#[allow(dead_code)]
fn recurse(n: u64, depth: u64, sink: &mut [u64; 64]) -> u64 {
    if std::hint::black_box(n) >= depth {
        return n;
    }
    sink[(n % 64) as usize] = n;
    let mut local = std::hint::black_box([n; 64]);
    local[0] = recurse(n + 1, depth, sink);
    std::hint::black_box(local).iter().sum()
}

static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Policy for Hostile {
    fn metadata() -> Metadata {
        if cfg!(feature = "bad-metadata") {
            return Metadata::new("", "", "no name").applies_to(Vec::<String>::new());
        }
        Metadata::new(NAME, "0.1.0", "misbehaves on purpose")
    }

    fn evaluate(proposal: &Proposal, facts: &Facts) -> Decision {
        // Not hostile: says what contract 0.2.0 gave it, so a test can see
        // the newer facts arrive (and arrive as none from an old record).
        if cfg!(feature = "tells-facts") {
            return Decision::approve(format!("weekday {:?}, document {:?}", facts.weekday, proposal.document_type));
        }
        let _ = facts;
        #[cfg(feature = "infinite-loop")]
        {
            let mut i: u64 = 0;
            loop {
                i = std::hint::black_box(i.wrapping_add(1));
            }
        }
        #[cfg(feature = "memory-bomb")]
        {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1024 * 1024]);
                std::hint::black_box(&hoard);
            }
        }
        #[cfg(feature = "deep-recursion")]
        {
            let mut sink = [0u64; 64];
            return Decision::approve(format!("{}", recurse(0, u64::MAX, &mut sink)));
        }
        #[cfg(feature = "panic")]
        {
            panic!("policy bug: unexpected proposal {}", proposal.correlation_id);
        }
        #[cfg(feature = "long-reason")]
        {
            return Decision::Approve("x".repeat(10_000));
        }
        // Global state would leak between evaluations if an instance were reused.
        #[allow(unreachable_code)]
        if cfg!(feature = "remembers") {
            let calls = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            return Decision::approve(format!("call number {calls}"));
        }
        #[allow(unreachable_code)]
        Decision::approve(format!("approves {} without looking", proposal.proposal_type))
    }
}

bookkeeper_policy_sdk::export_policy!(Hostile);
