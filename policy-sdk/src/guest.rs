//! Glue between the WIT bindings and the SDK's plain types (wasm guests only).

/// Bindings generated from `wit/policy.wit`.
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        default_bindings_module: "bookkeeper_policy_sdk::guest::bindings",
    });
}

use bindings::bookkeeper::policy::types as wit;

pub use bindings::Guest;
pub use wit::{Decision as WitDecision, Facts as WitFacts, Metadata as WitMetadata, Proposal as WitProposal};

use crate::{Decision, Facts, Metadata, Money, Proposal, Vendor, VendorHistory};

pub fn proposal_from_wit(p: WitProposal) -> Proposal {
    Proposal {
        proposal_type: p.proposal_type,
        correlation_id: p.correlation_id,
        proposed_by: p.proposed_by,
        requested_by: p.requested_by,
        amount: p.amount.map(|m| Money { minor: m.minor, currency: m.currency }),
        vendor: p.vendor.map(|v| Vendor { name: v.name, organization_number: v.organization_number }),
        account: p.account,
        description: p.description,
        invoice_number: p.invoice_number,
        invoice_date: p.invoice_date,
        due_date: p.due_date,
        has_document: p.has_document,
        document_type: p.document_type,
        payload_json: p.payload_json,
    }
}

pub fn facts_from_wit(f: WitFacts) -> Facts {
    Facts {
        today: f.today,
        vendor_history: VendorHistory {
            payments: f.vendor_history.payments,
            total_minor: f.vendor_history.total_minor,
            largest_minor: f.vendor_history.largest_minor,
            last_paid: f.vendor_history.last_paid,
        },
        account_month_to_date_minor: f.account_month_to_date_minor,
        duplicate_invoice_registered: f.duplicate_invoice_registered,
        duplicate_invoice_proposed: f.duplicate_invoice_proposed,
        requester_proposals_last_30_days: f.requester_proposals_last_30_days,
        requester_proposals_today: f.requester_proposals_today,
        weekday: f.weekday,
    }
}

pub fn decision_to_wit(d: Decision) -> WitDecision {
    match d {
        Decision::Approve(r) => WitDecision::Approve(r),
        Decision::Reject(r) => WitDecision::Reject(r),
        Decision::Escalate(r) => WitDecision::Escalate(r),
    }
}

pub fn metadata_to_wit(m: Metadata) -> WitMetadata {
    WitMetadata { name: m.name, version: m.version, description: m.description, applies_to: m.applies_to }
}

/// The allocator of policy components: a bump allocator over a small static arena,
/// falling back to the system allocator when the arena is full.
///
/// Every evaluation runs in a fresh instance, so nothing allocated needs to be
/// given back: bumping a pointer is all a policy's strings and vectors need.
/// It also means a typical evaluation never grows linear memory, and growing it
/// (an `mprotect` in the host for every evaluation) was the largest cost of
/// running a policy.
#[cfg(target_arch = "wasm32")]
mod arena {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::UnsafeCell;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const SIZE: usize = 64 * 1024;

    #[repr(C, align(16))]
    struct Arena(UnsafeCell<[u8; SIZE]>);

    // SAFETY: a wasm32 guest without threads has one thread; the offset is atomic anyway.
    unsafe impl Sync for Arena {}

    static ARENA: Arena = Arena(UnsafeCell::new([0; SIZE]));
    static USED: AtomicUsize = AtomicUsize::new(0);

    struct Bump;

    fn in_arena(ptr: *mut u8) -> bool {
        let base = ARENA.0.get() as usize;
        (base..base + SIZE).contains(&(ptr as usize))
    }

    // SAFETY: returns either null, a fresh region of the arena that no other
    // allocation overlaps (the offset only grows), or the system allocator's.
    unsafe impl GlobalAlloc for Bump {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let base = ARENA.0.get() as usize;
            let used = USED.load(Ordering::Relaxed);
            let start = (base + used + layout.align() - 1) & !(layout.align() - 1);
            let end = start - base + layout.size();
            if end <= SIZE {
                USED.store(end, Ordering::Relaxed);
                start as *mut u8
            } else {
                // SAFETY: forwarded unchanged.
                unsafe { System.alloc(layout) }
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if !in_arena(ptr) {
                // SAFETY: it came from the system allocator, with this layout.
                unsafe { System.dealloc(ptr, layout) }
            }
        }
    }

    #[global_allocator]
    static GLOBAL: Bump = Bump;
}
