// Small receipts, in JavaScript: attach a receipt without asking anyone when it
// is under 1 000 NOK, a document is attached, and we have paid the vendor before.
//
// The same rule as policies/small-receipts (Rust) and small-receipts-python,
// passing the same recorded cases; the benchmarks run all three side by side.

import { approve, escalate, kroner, metadata as describe, show } from "./bookkeeper-policy.js";

/** The auto-approval limit: receipts at or above it go to a person. */
const LIMIT = kroner(1000);

export function metadata() {
  return describe(
    "small-receipts",
    "1.0.0",
    "Approves receipts under 1 000 NOK with a document, from a known vendor",
    ["ReceiptAttachmentProposed"],
  );
}

export function evaluate(proposal, facts) {
  if (!proposal.hasDocument) {
    return escalate("no receipt document is attached");
  }
  const amount = proposal.amount;
  if (amount === undefined) {
    return escalate("the receipt's amount is unknown");
  }
  if (amount.currency !== "NOK") {
    return escalate(`the receipt is in ${amount.currency}, not NOK`);
  }
  if (amount.minor <= 0n) {
    return escalate(`${show(amount)} is not a purchase (refund or zero)`);
  }
  if (amount.minor >= LIMIT.minor) {
    return escalate(`${show(amount)} is at or above the ${show(LIMIT)} auto-approval limit`);
  }
  const vendor = proposal.vendor;
  if (vendor === undefined) {
    return escalate("the vendor is unknown");
  }
  const payments = facts.vendorHistory.payments;
  if (payments === 0) {
    return escalate(`first receipt from ${vendor.name}`);
  }
  return approve(
    `${show(amount)} from known vendor ${vendor.name} (${payments} earlier payments), under the ${show(LIMIT)} limit`,
  );
}
