"""``pytest conformance --impl SPEC [--examples N] [--seed S]``: the suite as pytest tests."""

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("lrp-conformance")
    group.addoption("--impl", default="lrp_core-numpy", metavar="SPEC",
                    help="the LRP implementation to check: a built-in name or module:Class")
    group.addoption("--examples", type=int, default=25, metavar="N",
                    help="hypothesis examples per property and preset")
    group.addoption("--seed", type=int, default=0, metavar="S", help="random seed")


@pytest.fixture(scope="session")
def implementation(request):
    from lrp_conformance import load_implementation

    try:
        return load_implementation(request.config.getoption("--impl"))
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
