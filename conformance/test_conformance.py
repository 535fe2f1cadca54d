"""Every property on every preset, as one pytest test each (``pytest conformance --impl SPEC``).
A failure prints the smallest counterexample as runnable torch code."""

import pytest

from lrp_conformance import PRESET_NAMES, PROPERTIES
from lrp_conformance.runner import FAIL, applicability, check_property


@pytest.mark.parametrize("preset", PRESET_NAMES)
@pytest.mark.parametrize("name", list(PROPERTIES))
def test_property(name, preset, implementation, request):
    prop = PROPERTIES[name]
    why_not = applicability(prop, implementation, preset)
    if why_not:
        pytest.skip(why_not)
    outcome = check_property(prop, implementation, preset, request.config.getoption("--examples"),
                             request.config.getoption("--seed"))
    if outcome.status == FAIL:
        text = [outcome.reason, "", "The smallest counterexample found:", outcome.code]
        if outcome.extra_code:
            text += ["The equivalent network it was compared with:", outcome.extra_code]
        pytest.fail("\n".join(text), pytrace=False)
    if outcome.status != "pass":
        pytest.skip(outcome.reason)
