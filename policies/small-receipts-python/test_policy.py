"""The recorded cases, run against the policy's Python code (pytest)."""

import pytest

from bookkeeper_policy import load_cases
from policy import WitWorld

CASES = load_cases("cases.json")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_recorded_case(case):
    case.check(WitWorld().evaluate(case.proposal, case.facts))


def test_metadata_names_the_policy():
    assert WitWorld().metadata().name == "small-receipts"
