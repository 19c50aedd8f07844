// Duplicate invoice, in JavaScript: never pay the same supplier invoice twice.
//
// The same rule as policies/duplicate-invoice (Rust), passing the same recorded cases.

import { approve, escalate, metadata as describe, reject } from "./bookkeeper-policy.js";

export function metadata() {
  return describe(
    "duplicate-invoice",
    "1.0.0",
    "Rejects an invoice whose vendor and invoice number were already registered",
    ["InvoiceRegistrationProposed"],
  );
}

export function evaluate(proposal, facts) {
  const vendor = proposal.vendor?.name ?? "an unknown vendor";
  const number = proposal.invoiceNumber?.trim();
  if (!number) {
    return escalate(`the invoice from ${vendor} has no invoice number to check`);
  }
  if (facts.duplicateInvoiceRegistered) {
    return reject(`invoice ${number} from ${vendor} is already registered`);
  }
  if (facts.duplicateInvoiceProposed) {
    return escalate(`another proposal for invoice ${number} from ${vendor} is still open`);
  }
  return approve(`invoice ${number} from ${vendor} has not been registered before`);
}
