"""Small receipts, in Python: attach a receipt without asking anyone when it is
under 1 000 NOK, a document is attached, and we have paid the vendor before.

The same rule as policies/small-receipts (Rust), passing the same recorded cases.
"""

import wit_world

from bookkeeper_policy import approve, escalate, kroner, metadata, show

#: The auto-approval limit: receipts at or above it go to a person.
LIMIT = kroner(1_000)


class WitWorld(wit_world.WitWorld):
    def metadata(self):
        return metadata(
            "small-receipts",
            "1.0.0",
            "Approves receipts under 1 000 NOK with a document, from a known vendor",
            ["ReceiptAttachmentProposed"],
        )

    def evaluate(self, proposal, facts):
        if not proposal.has_document:
            return escalate("no receipt document is attached")
        amount = proposal.amount
        if amount is None:
            return escalate("the receipt's amount is unknown")
        if amount.currency != "NOK":
            return escalate(f"the receipt is in {amount.currency}, not NOK")
        if amount.minor <= 0:
            return escalate(f"{show(amount)} is not a purchase (refund or zero)")
        if amount.minor >= LIMIT.minor:
            return escalate(f"{show(amount)} is at or above the {show(LIMIT)} auto-approval limit")
        vendor = proposal.vendor
        if vendor is None:
            return escalate("the vendor is unknown")
        payments = facts.vendor_history.payments
        if payments == 0:
            return escalate(f"first receipt from {vendor.name}")
        return approve(
            f"{show(amount)} from known vendor {vendor.name} ({payments} earlier payments), under the {show(LIMIT)} limit"
        )
