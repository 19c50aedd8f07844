//! The one place where what we do departs from the vendors' documents, or
//! relies on what they leave open. Every entry says why. Nothing else in the
//! workspace may call an endpoint, send a field or answer a status the
//! documents do not define.

use crate::Vendor;

/// A URL our clients use that is not a path of the vendor's API.
#[derive(Debug, Clone, Copy)]
pub struct OutsideTheApi {
    /// Whose.
    pub vendor: Vendor,
    /// What it is.
    pub what: &'static str,
    /// Why we use it anyway.
    pub reason: &'static str,
}

/// URLs the documents hand out rather than define. The fakes serve them outside
/// the API's base path, so the contract check never sees them.
pub const OUTSIDE_THE_API: &[OutsideTheApi] = &[
    OutsideTheApi {
        vendor: Vendor::Fiken,
        what: "GET <attachment.downloadUrl>",
        reason: "the only documented way to read an attachment's bytes back; the executor compares them with \
                 the receipt it sent to learn whether an upload whose answer was lost landed. The token is sent \
                 only to the API's own origin and to https://fiken.no (the document's example downloadUrl); an \
                 attachment elsewhere makes the check answer \"cannot tell\".",
    },
    OutsideTheApi {
        vendor: Vendor::Discord,
        what: "GET <attachment.url> (cdn.discordapp.com)",
        reason: "a receipt dropped in the finance channel is downloaded from the URL the message carries, \
                 without the bot token",
    },
];

/// Live behaviour a client relies on that its document does not state.
#[derive(Debug, Clone, Copy)]
pub struct Undocumented {
    /// Whose.
    pub vendor: Vendor,
    /// What we rely on.
    pub behaviour: &'static str,
    /// Where we know it from.
    pub source: &'static str,
}

/// What the documents leave open and we rely on, as the reference notes describe it.
pub const UNDOCUMENTED: &[Undocumented] = &[
    Undocumented {
        vendor: Vendor::Fiken,
        behaviour: "the `Location` of a 201 ends with the new resource's id",
        source: "../shared/ref/fiken.md §6 (201 + Location, the full URL of the new resource)",
    },
    Undocumented {
        vendor: Vendor::Fiken,
        behaviour: "one request at a time per token; a second concurrent one may get 429, perhaps with Retry-After",
        source: "../shared/ref/fiken.md §4",
    },
    Undocumented {
        vendor: Vendor::Folio,
        behaviour: "amounts may come signed (negative = money out); the document's patterns carry no sign, so \
                    the client reads direction from debtor/creditor and accepts either form",
        source: "../shared/ref/folio.md §2 (UNVERIFIED)",
    },
];

/// Error answers a vendor gives that its document does not define (the
/// documents define few error statuses and no error bodies). A fake may answer
/// these; a client must expect them. Bodies are not checked.
#[derive(Debug, Clone, Copy)]
pub struct LeftOpen {
    /// Whose.
    pub vendor: Vendor,
    /// The status.
    pub status: u16,
    /// What it means there, and where we know it from.
    pub meaning: &'static str,
}

/// Every error status the fakes may give without the document defining it.
pub const LEFT_OPEN: &[LeftOpen] = &[
    LeftOpen {
        vendor: Vendor::Fiken,
        status: 400,
        meaning: "invalid content, unexpected fields; JSON `message` (fiken.md §6)",
    },
    LeftOpen { vendor: Vendor::Fiken, status: 401, meaning: "token missing or refused (fiken.md §6)" },
    LeftOpen {
        vendor: Vendor::Fiken,
        status: 402,
        meaning: "the company lacks the API module (fiken.md §3, UNVERIFIED)",
    },
    LeftOpen { vendor: Vendor::Fiken, status: 403, meaning: "not authorised for this company (fiken.md §6)" },
    LeftOpen { vendor: Vendor::Fiken, status: 404, meaning: "no such company or resource (fiken.md §6)" },
    LeftOpen { vendor: Vendor::Fiken, status: 405, meaning: "wrong method (fiken.md §6)" },
    LeftOpen { vendor: Vendor::Fiken, status: 415, meaning: "a body that is not application/json (fiken.md §1)" },
    LeftOpen { vendor: Vendor::Fiken, status: 429, meaning: "a second concurrent request, or too fast (fiken.md §4)" },
    LeftOpen { vendor: Vendor::Fiken, status: 500, meaning: "Fiken failed; a write may or may not have happened" },
    LeftOpen { vendor: Vendor::Fiken, status: 503, meaning: "Fiken unavailable" },
    LeftOpen { vendor: Vendor::Folio, status: 400, meaning: "invalid request; text body (folio.md §2)" },
    LeftOpen { vendor: Vendor::Folio, status: 401, meaning: "API key missing or refused (folio.md §1)" },
    LeftOpen {
        vendor: Vendor::Folio,
        status: 403,
        meaning: "an event that is not ours; documented for PATCH only (folio.md §3)",
    },
    LeftOpen { vendor: Vendor::Folio, status: 404, meaning: "no such account, event or attachment (folio.md §3)" },
    LeftOpen { vendor: Vendor::Folio, status: 429, meaning: "rate limited, Retry-After (folio.md §2)" },
    LeftOpen { vendor: Vendor::Folio, status: 500, meaning: "Folio failed; a write may or may not have happened" },
    LeftOpen { vendor: Vendor::Folio, status: 503, meaning: "Folio unavailable" },
    LeftOpen {
        vendor: Vendor::Discord,
        status: 500,
        meaning: "Discord failed; a message may or may not have been posted",
    },
    LeftOpen { vendor: Vendor::Discord, status: 502, meaning: "Discord's gateway to the API failed" },
    LeftOpen { vendor: Vendor::Discord, status: 503, meaning: "Discord unavailable" },
];

/// Whether `vendor` may answer `status` though its document does not define it.
pub fn left_open(vendor: Vendor, status: u16) -> bool {
    LEFT_OPEN.iter().any(|l| l.vendor == vendor && l.status == status)
}
