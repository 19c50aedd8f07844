// Helpers for Bookkeeper approval policies in JavaScript: money, decisions,
// metadata, and the recorded cases format shared with Rust and Python.
//
// The contract (wit/policy.wit) reaches JavaScript as plain objects: record
// fields in camelCase, an absent option as `undefined`, 64-bit integers (money
// in minor units) as BigInt, and a decision as `{ tag, val }`.
// Keep this file beside policy.js; it is bundled into the component.

/** The longest reason a decision may carry; a longer one is a policy fault. */
export const MAX_REASON_CHARS = 500;

/** An amount in øre: nok(12345n) is 123,45 kr. */
export function nok(minor) {
  return { minor: BigInt(minor), currency: "NOK" };
}

/** Whole kroner: kroner(500) is 500,00 kr. */
export function kroner(whole) {
  return nok(BigInt(whole) * 100n);
}

/** "1249.00 NOK", exactly as the Rust SDK writes an amount. */
export function show(money) {
  const minor = BigInt(money.minor);
  const abs = minor < 0n ? -minor : minor;
  const cents = String(abs % 100n).padStart(2, "0");
  return `${minor < 0n ? "-" : ""}${abs / 100n}.${cents} ${money.currency}`;
}

/** Carry it out without asking anyone. */
export function approve(reason) {
  return { tag: "approve", val: String(reason) };
}

/** Refuse it. */
export function reject(reason) {
  return { tag: "reject", val: String(reason) };
}

/** Ask a person to decide. */
export function escalate(reason) {
  return { tag: "escalate", val: String(reason) };
}

/** Who the policy is and which proposal types it judges ("*" for all). */
export function metadata(name, version, description, appliesTo) {
  return { name, version, description, appliesTo: [...appliesTo] };
}

const optional = (v) => (v === null || v === undefined ? undefined : v);

/** A proposal from a case's JSON, with the same defaults as Review-E's. */
export function proposalFromCase(p) {
  return {
    proposalType: p.proposal_type,
    correlationId: p.correlation_id ?? "",
    proposedBy: p.proposed_by ?? "book-e",
    requestedBy: p.requested_by ?? "",
    amount: p.amount ? { minor: BigInt(p.amount.minor), currency: p.amount.currency } : undefined,
    vendor: p.vendor
      ? { name: p.vendor.name, organizationNumber: optional(p.vendor.organization_number) }
      : undefined,
    account: optional(p.account),
    description: optional(p.description),
    invoiceNumber: optional(p.invoice_number),
    invoiceDate: optional(p.invoice_date),
    dueDate: optional(p.due_date),
    hasDocument: Boolean(p.has_document),
    documentType: optional(p.document_type),
    payloadJson: p.payload_json ?? "{}",
  };
}

/** Facts from a case's JSON; what a case leaves out is zero, false or none. */
export function factsFromCase(f = {}) {
  const h = f.vendor_history ?? {};
  return {
    today: f.today ?? "",
    vendorHistory: {
      payments: h.payments ?? 0,
      totalMinor: BigInt(h.total_minor ?? 0),
      largestMinor: BigInt(h.largest_minor ?? 0),
      lastPaid: optional(h.last_paid),
    },
    accountMonthToDateMinor: BigInt(f.account_month_to_date_minor ?? 0),
    duplicateInvoiceRegistered: Boolean(f.duplicate_invoice_registered),
    duplicateInvoiceProposed: Boolean(f.duplicate_invoice_proposed),
    requesterProposalsLast30Days: f.requester_proposals_last_30_days ?? 0,
    requesterProposalsToday: f.requester_proposals_today ?? 0,
    weekday: optional(f.weekday),
  };
}

/** Every case of a cases file's text, ready to run. */
export function parseCases(json) {
  return JSON.parse(json).cases.map((raw) => ({
    name: raw.name,
    proposal: proposalFromCase(raw.proposal),
    facts: factsFromCase(raw.facts),
    expect: raw.expect,
    reasonContains: raw.reason_contains,
  }));
}

/** Throws unless `decision` is what `c` expects. */
export function checkCase(c, decision) {
  if (decision.tag !== c.expect) {
    throw new Error(`${c.name}: expected ${c.expect}, got ${decision.tag} (${decision.val})`);
  }
  if (c.reasonContains !== undefined && !decision.val.includes(c.reasonContains)) {
    throw new Error(`${c.name}: the reason ${JSON.stringify(decision.val)} lacks ${JSON.stringify(c.reasonContains)}`);
  }
  if ([...decision.val].length > MAX_REASON_CHARS) {
    throw new Error(`${c.name}: the reason is longer than ${MAX_REASON_CHARS} characters`);
  }
}
