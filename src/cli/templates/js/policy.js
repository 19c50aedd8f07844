// {{name}}: describe what this policy decides and why.

import { approve, escalate, kroner, metadata as describe, show } from "./bookkeeper-policy.js";

/** Receipts under this amount are approved without asking anyone. */
const LIMIT = kroner(500);

export function metadata() {
  return describe(
    "{{name}}",
    "0.1.0",
    "Approves receipts under 500 NOK; asks a person otherwise",
    ["ReceiptAttachmentProposed"],
  );
}

export function evaluate(proposal, facts) {
  const amount = proposal.amount;
  if (amount === undefined) {
    return escalate("the amount is unknown");
  }
  if (amount.currency === "NOK" && amount.minor < LIMIT.minor) {
    return approve(`${show(amount)} is under ${show(LIMIT)}`);
  }
  return escalate(`${show(amount)} needs a person`);
}
