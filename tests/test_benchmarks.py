"""The benchmark harness runs end to end on LeNet-5 and writes what it says (no timing is
asserted: speed targets live in the benchmarks' results, not in unit tests)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from benchmarks.harness import main, run  # noqa: E402
from benchmarks.memory import measure_in_subprocess  # noqa: E402
from benchmarks.report import markdown  # noqa: E402
from benchmarks.timing import interleaved, summary  # noqa: E402


def test_interleaved_rounds_rotate_and_count():
    calls = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def call(self):
            calls.append(self.name)

    contenders = [Fake("a"), Fake("b"), Fake("c")]
    times = interleaved(contenders, rounds=3, warmup=1)
    assert calls[:3] == ["a", "b", "c"]  # the warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}


def test_summary():
    s = summary([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (s["median"], s["min"], s["max"], s["n"]) == (3.0, 1.0, 100.0, 5)


def test_a_run_on_lenet5_records_every_contender():
    record = run(["lenet5"], [2], ["Epsilon", "EpsilonPlusFlat"],
                 ["gradient", "lrp-core/torch", "lrp-core/numpy", "captum"], rounds=2,
                 threads=1, dtype="float32", memory=False, log=lambda *a: None)
    timed = {(c["preset"], c["contender"]) for c in record["cases"] if "median" in c}
    assert ("Epsilon", "gradient") in timed  # the baseline, once
    assert ("EpsilonPlusFlat", "gradient") not in timed
    for preset in ("Epsilon", "EpsilonPlusFlat"):
        assert (preset, "lrp-core/torch") in timed and (preset, "lrp-core/numpy") in timed
    skipped = {c["contender"]: c["skipped"] for c in record["cases"]
               if "skipped" in c and c["preset"] == "EpsilonPlusFlat"}
    assert "no flat or box rule" in skipped["captum"]
    assert all(len(c["times"]) == 2 and c["median"] > 0 for c in record["cases"]
               if "median" in c)
    table = markdown(record)
    assert "| lenet5 | 2 | Epsilon | lrp-core/torch |" in table
    assert "x gradient" in table and "Not run:" in table


def test_memory_is_measured_in_a_subprocess():
    result = measure_in_subprocess("lenet5", "Epsilon", 1, "lrp-core/numpy", calls=11,
                                   threads=1, timeout=600)
    assert result.get("extra_peak_mib", -1) >= 0, result
    assert result["growth_mib"] is not None


def test_the_command_writes_json_and_markdown(tmp_path):
    assert main(["--models", "lenet5", "--batches", "1", "--presets", "Epsilon",
                 "--contenders", "gradient", "lrp-core/numpy", "--rounds", "1",
                 "--threads", "1", "--out", str(tmp_path), "--tag", "t"]) == 0
    record = json.loads((tmp_path / "t.json").read_text())
    assert record["settings"]["models"] == ["lenet5"]
    assert "lrp-core/numpy" in (tmp_path / "t.md").read_text()
