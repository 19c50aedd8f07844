// The recorded cases, run against the policy's JavaScript (node --test).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { checkCase, parseCases } from "./bookkeeper-policy.js";
import { evaluate, metadata } from "./policy.js";

for (const c of parseCases(readFileSync(new URL("./cases.json", import.meta.url), "utf8"))) {
  test(c.name, () => checkCase(c, evaluate(c.proposal, c.facts)));
}

test("metadata names the policy", () => {
  assert.equal(metadata().name, "duplicate-invoice");
});
