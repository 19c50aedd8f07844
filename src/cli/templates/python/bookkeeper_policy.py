"""Helpers for Bookkeeper approval policies in Python: the contract's types
(generated from wit/policy.wit by `bookkeeper policy build`/`test`), money,
decisions, metadata, and the recorded cases format shared with Rust and JS.

Keep this file beside policy.py; it is bundled into the component.
"""

import json
from typing import List, Optional

from wit_world.imports import types

Money = types.Money
Vendor = types.Vendor
Proposal = types.Proposal
Facts = types.Facts
VendorHistory = types.VendorHistory

#: The longest reason a decision may carry; a longer one is a policy fault.
MAX_REASON_CHARS = 500


def nok(minor: int) -> types.Money:
    """An amount in øre: nok(12345) is 123,45 kr."""
    return types.Money(minor=minor, currency="NOK")


def kroner(whole: int) -> types.Money:
    """Whole kroner: kroner(500) is 500,00 kr."""
    return nok(whole * 100)


def show(money: types.Money) -> str:
    """"1249.00 NOK", exactly as the Rust SDK writes an amount."""
    sign = "-" if money.minor < 0 else ""
    whole, minor = divmod(abs(money.minor), 100)
    return f"{sign}{whole}.{minor:02} {money.currency}"


def approve(reason: str) -> types.Decision:
    """Carry it out without asking anyone."""
    return types.Decision_Approve(reason)


def reject(reason: str) -> types.Decision:
    """Refuse it."""
    return types.Decision_Reject(reason)


def escalate(reason: str) -> types.Decision:
    """Ask a person to decide."""
    return types.Decision_Escalate(reason)


def outcome(decision: types.Decision) -> str:
    """"approve", "reject" or "escalate"."""
    if isinstance(decision, types.Decision_Approve):
        return "approve"
    if isinstance(decision, types.Decision_Reject):
        return "reject"
    if isinstance(decision, types.Decision_Escalate):
        return "escalate"
    raise TypeError(f"not a decision: {decision!r}")


def metadata(name: str, version: str, description: str, applies_to: List[str]) -> types.Metadata:
    """Who the policy is and which proposal types it judges ("*" for all)."""
    return types.Metadata(name=name, version=version, description=description, applies_to=list(applies_to))


def proposal_from_case(p: dict) -> types.Proposal:
    """A proposal from a case's JSON, with the same defaults as Review-E's."""
    amount = p.get("amount")
    vendor = p.get("vendor")
    return types.Proposal(
        proposal_type=p["proposal_type"],
        correlation_id=p.get("correlation_id", ""),
        proposed_by=p.get("proposed_by", "book-e"),
        requested_by=p.get("requested_by", ""),
        amount=types.Money(minor=int(amount["minor"]), currency=amount["currency"]) if amount else None,
        vendor=types.Vendor(name=vendor["name"], organization_number=vendor.get("organization_number")) if vendor else None,
        account=p.get("account"),
        description=p.get("description"),
        invoice_number=p.get("invoice_number"),
        invoice_date=p.get("invoice_date"),
        due_date=p.get("due_date"),
        has_document=bool(p.get("has_document", False)),
        document_type=p.get("document_type"),
        payload_json=p.get("payload_json", "{}"),
    )


def facts_from_case(f: dict) -> types.Facts:
    """Facts from a case's JSON; what a case leaves out is zero, false or none."""
    h = f.get("vendor_history", {})
    return types.Facts(
        today=f.get("today", ""),
        vendor_history=types.VendorHistory(
            payments=int(h.get("payments", 0)),
            total_minor=int(h.get("total_minor", 0)),
            largest_minor=int(h.get("largest_minor", 0)),
            last_paid=h.get("last_paid"),
        ),
        account_month_to_date_minor=int(f.get("account_month_to_date_minor", 0)),
        duplicate_invoice_registered=bool(f.get("duplicate_invoice_registered", False)),
        duplicate_invoice_proposed=bool(f.get("duplicate_invoice_proposed", False)),
        requester_proposals_last_30_days=int(f.get("requester_proposals_last_30_days", 0)),
        requester_proposals_today=int(f.get("requester_proposals_today", 0)),
        weekday=f.get("weekday"),
    )


class Case:
    """One recorded case of cases.json."""

    def __init__(self, raw: dict):
        self.name: str = raw["name"]
        self.proposal = proposal_from_case(raw["proposal"])
        self.facts = facts_from_case(raw.get("facts", {}))
        self.expect: str = raw["expect"]
        self.reason_contains: Optional[str] = raw.get("reason_contains")

    def check(self, decision: types.Decision) -> None:
        """Raises AssertionError unless `decision` is what the case expects."""
        got = outcome(decision)
        reason = decision.value
        assert got == self.expect, f"{self.name}: expected {self.expect}, got {got} ({reason})"
        if self.reason_contains is not None:
            assert self.reason_contains in reason, f"{self.name}: the reason {reason!r} lacks {self.reason_contains!r}"
        assert len(reason) <= MAX_REASON_CHARS, f"{self.name}: the reason is longer than {MAX_REASON_CHARS} characters"


def load_cases(path: str = "cases.json") -> List[Case]:
    """Every case of a cases file."""
    with open(path, encoding="utf-8") as f:
        return [Case(raw) for raw in json.load(f)["cases"]]
