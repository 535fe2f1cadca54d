"""The conformance suite itself: it passes this library, and it catches implementations that are
wrong in realistic ways, each by a property named here.

The wrong implementations wrap this library's correct one and break one thing each, as a bug
would. Each must fail at least one of the properties listed for it (a property that caught it
for a different reason would still count: the sets say which ones are expected to see the bug).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("hypothesis")

import lrp_core as lrp
from lrp_conformance import BOX_HIGH, BOX_LOW, PROPERTIES, load_implementation, run

EXAMPLES = 12


def _composite(preset: str, **options):
    if preset == "epsilon_gamma_box":
        return lrp.preset(preset, low=BOX_LOW, high=BOX_HIGH, **options)
    return lrp.preset(preset, **options)


class Correct:
    """This library on NumPy, written out as a user of the protocol would."""

    name = "correct"
    supports = set(lrp.PRESETS)

    def analyzer(self, model, preset):
        return lrp.LRP(model, _composite(preset))

    def relevance(self, model, x, preset, targets):
        return self.analyzer(model, preset)(x.detach().numpy(), list(targets)).val

    def explain(self, model, x, preset, targets):
        return self.relevance(model, x, preset, targets)


class ForgetsTheInput(Correct):
    """Returns ``Wᵀs`` at the input, forgetting to multiply by the input (``R / x``)."""

    name = "forgets-the-input"

    def explain(self, model, x, preset, targets):
        r, a = self.relevance(model, x, preset, targets), x.detach().numpy()
        return np.divide(r, a, out=np.zeros_like(r), where=a != 0)


class IgnoresTheTarget(Correct):
    """Always explains the largest output."""

    name = "ignores-the-target"

    def explain(self, model, x, preset, targets):
        return self.analyzer(model, preset)(x.detach().numpy()).val


class ShufflesTheBatch(Correct):
    """Returns the samples' relevances in another order."""

    name = "shuffles-the-batch"

    def explain(self, model, x, preset, targets):
        return self.relevance(model, x, preset, targets)[::-1].copy()


class HugeStabiliser(Correct):
    """A stabiliser of 0.1 where the rules say 1e-9 (LRP-0) or 1e-6 (epsilon)."""

    name = "huge-stabiliser"

    def analyzer(self, model, preset):
        if preset == "zero":
            return lrp.LRP(model, lrp.EpsilonRule(0.1))
        return lrp.LRP(model, _composite(preset, epsilon=0.1))


class SpreadsUniformly(Correct):
    """Spreads the target's relevance evenly over the input."""

    name = "spreads-uniformly"

    def explain(self, model, x, preset, targets):
        n = x[0].numel()
        return np.full(tuple(x.shape), 1.0 / n)


class ReturnsFloat32(Correct):
    """Computes in float32."""

    name = "returns-float32"

    def explain(self, model, x, preset, targets):
        return self.analyzer(model, preset)(x.detach().numpy().astype(np.float32),
                                            list(targets)).val


class _ZPlusKeepingNegativeWeights(lrp.LRPRule):
    """``z = W a⁺ + b⁺``: z⁺ that forgot to drop the negative weights."""

    def modify_input(self, x):
        return lrp.keep_positive(x)

    def modify_bias(self, bias):
        return lrp.keep_positive(bias)


class ZPlusKeepsNegativeWeights(Correct):
    """Its z⁺ rule (the conv rule of the epsilon_plus presets) keeps the negative weights."""

    name = "zplus-keeps-negative-weights"

    def analyzer(self, model, preset):
        composite = _composite(preset)
        if preset.startswith("epsilon_plus"):
            graph = lrp.canonize(lrp.from_torch(model))
            rules = [_ZPlusKeepingNegativeWeights() if isinstance(rule, lrp.ZPlusRule) else rule
                     for rule in composite.rules_for(graph)]
            return lrp.LRP(graph, rules)
        return lrp.LRP(model, composite)


class SkipsBatchNormFolding(Correct):
    """Leaves BatchNorm unfused (PassRule on it) and applies the rules to the bare convs."""

    name = "skips-batchnorm-folding"

    def analyzer(self, model, preset):
        graph = lrp.from_torch(model)
        graph = graph.with_layers([lrp.Affine(*layer.scale_and_shift(), axis=1)
                                   if isinstance(layer, lrp.BatchNorm) else layer
                                   for layer in graph])
        return lrp.LRP(graph, _composite(preset))


class StartsFromTheLogit(Correct):
    """Starts the backward pass from the target's logit instead of 1."""

    name = "starts-from-the-logit"

    def analyzer(self, model, preset):
        return lrp.LRP(model, _composite(preset), normalize_output_relevance=False)


class ModifiesTheModel(Correct):
    """Scales the model's first parameter in place, as a careless canonizer would."""

    name = "modifies-the-model"

    def explain(self, model, x, preset, targets):
        with torch.no_grad():
            next(model.parameters()).mul_(1.0)
            next(model.parameters()).add_(1e-3)
        return self.relevance(model, x, preset, targets)


WRONG = [
    (ForgetsTheInput, {"linear_layer", "gradient_x_input", "conservation", "reference"}),
    (IgnoresTheTarget, {"target"}),
    (ShufflesTheBatch, {"batch"}),
    (HugeStabiliser, {"linear_layer", "gradient_x_input", "conservation", "reference"}),
    (SpreadsUniformly, {"linear_layer", "gradient_x_input", "target", "reference"}),
    (ReturnsFloat32, {"well_formed"}),
    (ZPlusKeepsNegativeWeights, {"linear_layer", "reference", "conservation"}),
    (SkipsBatchNormFolding, {"batchnorm_folding", "reference"}),
    (StartsFromTheLogit, {"conservation", "gradient_x_input", "linear_layer", "reference"}),
    (ModifiesTheModel, {"deterministic"}),
]


@pytest.mark.parametrize("wrong, expected", WRONG, ids=[w.name for w, _ in WRONG])
def test_each_wrong_implementation_is_caught(wrong, expected):
    # every property runs; failures are not shrunk here (shrinking is tested below)
    report = run(wrong(), examples=EXAMPLES, seed=1, shrink=False)
    caught = {o.prop for o in report.failures}
    assert caught, f"{wrong.name} passed every property:\n{report.table()}"
    assert caught & expected, (f"{wrong.name} was caught by {sorted(caught)}, expected one of "
                               f"{sorted(expected)}")
    for outcome in report.failures:  # every failure shows a runnable counterexample
        assert "class Net(nn.Module)" in outcome.code and "targets = [" in outcome.code


def test_the_correct_implementation_passes_everything():
    report = run(Correct(), examples=EXAMPLES, seed=2)
    assert report.passed, report.failure_text()
    statuses = {o.status for o in report.outcomes}
    assert statuses <= {"pass", "n/a"} and "pass" in statuses


@pytest.mark.parametrize("spec", ["lrp_core-numpy", "lrp_core-torch",
                                  "lrp_core-array-api-strict"])
def test_this_library_passes_on_each_backend(spec):
    pytest.importorskip("array_api_strict")
    report = run(load_implementation(spec), examples=6, seed=3)
    assert report.passed, report.failure_text()


def test_a_counterexample_runs_and_reproduces_the_difference():
    report = run(ShufflesTheBatch(), properties=["batch"], presets=["zero"], examples=EXAMPLES)
    (failure,) = report.failures
    namespace: dict = {}
    exec(compile(failure.code, "<counterexample>", "exec"), namespace)  # noqa: S102
    model, x, targets = namespace["model"], namespace["x"], namespace["targets"]
    assert len(targets) == len(x) >= 2
    shuffled = ShufflesTheBatch().explain(model, x, "zero", targets)
    correct = Correct().explain(model, x, "zero", targets)
    assert not np.allclose(shuffled, correct)


def test_properties_are_documented():
    for prop in PROPERTIES.values():
        assert len(prop.why) > 80, prop.name


def _lrp(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lrp_core", "conformance", *args],
                          capture_output=True, text=True, timeout=600, cwd=cwd)


def test_command_exit_status_table_and_json(tmp_path):
    out = tmp_path / "result.json"
    done = _lrp("--impl", "lrp_core-numpy", "--examples", "3", "--properties", "well_formed",
                "batch", "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "well_formed" in done.stdout and "epsilon_plus_flat" in done.stdout
    total = 2 * len(lrp.PRESETS)  # two properties on every preset
    assert f"[{total:3d}/{total}]" in done.stderr  # progress
    result = json.loads(out.read_text())
    assert result["passed"] and len(result["outcomes"]) == total


def test_command_fails_with_status_1_and_prints_the_counterexample(tmp_path):
    module = tmp_path / "mybad.py"
    module.write_text("import numpy as np\n"
                      "class Uniform:\n"
                      "    name = 'uniform'\n"
                      "    supports = {'zero'}\n"
                      "    def explain(self, model, x, preset, targets):\n"
                      "        return np.full(tuple(x.shape), 1.0 / x[0].numel())\n")
    done = _lrp("--impl", "mybad:Uniform", "--examples", "5", "--properties", "linear_layer",
                "--quiet", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "FAIL" in done.stdout and "class Net(nn.Module):" in done.stdout


@pytest.mark.parametrize("args", [["--impl", "no-such-implementation"],
                                  ["--impl", "lrp_core-numpy", "--properties", "nonsense"],
                                  ["--impl", "lrp_core-numpy", "--presets", "nonsense"]])
def test_command_usage_errors_exit_2(args):
    done = _lrp(*args)
    assert done.returncode == 2
    assert "error" in done.stderr and "Traceback" not in done.stderr


def test_pytest_runs_the_suite_on_an_implementation(tmp_path):
    import lrp_conformance

    folder = lrp_conformance.__path__[0]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           folder, "--impl", "lrp_core-numpy", "--examples", "2",
                           "-k", "well_formed or target"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{2 * len(lrp.PRESETS)} passed" in done.stdout
