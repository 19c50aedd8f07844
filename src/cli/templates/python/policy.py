"""{{name}}: describe what this policy decides and why."""

import wit_world

from bookkeeper_policy import escalate, approve, kroner, metadata, show

#: Receipts under this amount are approved without asking anyone.
LIMIT = kroner(500)


class WitWorld(wit_world.WitWorld):
    def metadata(self):
        return metadata(
            "{{name}}",
            "0.1.0",
            "Approves receipts under 500 NOK; asks a person otherwise",
            ["ReceiptAttachmentProposed"],
        )

    def evaluate(self, proposal, facts):
        amount = proposal.amount
        if amount is None:
            return escalate("the amount is unknown")
        if amount.currency == "NOK" and amount.minor < LIMIT.minor:
            return approve(f"{show(amount)} is under {show(LIMIT)}")
        return escalate(f"{show(amount)} needs a person")
