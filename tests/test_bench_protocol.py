"""The arithmetic of bench/time_to_loss.py's equal-time protocol, and bench/throughput.py's protocol on a toy
model (the benchmarks themselves are never timed in tests)."""

import importlib
import json
import os

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


@pytest.fixture
def bench(monkeypatch):
    """Import a bench script as Python does when it runs it: with bench/ first on sys.path."""
    monkeypatch.syspath_prepend(BENCH)
    return importlib.import_module

CURVE = [(100.0, 5.0), (200.0, 4.0), (400.0, 3.8)]  # (seconds of training, held-out loss)
OURS = {"seconds": 400.0, "seconds_per_step": 0.2, "curve": CURVE, "final_loss": 3.8}


def test_rival_steps_follow_the_interleaved_step_time_not_the_wall_clock(bench):
    rival_steps = bench("time_to_loss").rival_steps
    # our 2,000 steps took 400 s; a rival whose step costs 0.965x ours fits 2,073 steps in that time
    assert rival_steps(OURS, 400.0, 0.965) == 2073
    assert rival_steps(OURS, 400.0, 1.25) == 1600
    assert rival_steps(OURS, 200.0, 1.0) == 1000  # --minutes shorter than our run
    assert rival_steps(OURS, 0.01, 1.0) == 1


def test_loss_at_interpolates_between_checkpoints(bench):
    loss_at = bench("time_to_loss").loss_at
    assert loss_at(CURVE, 150.0) == pytest.approx(4.5)
    assert loss_at(CURVE, 1000.0) == 3.8
    assert loss_at(CURVE, 50.0) is None


def test_equal_time_reads_ours_at_a_shorter_budget_and_at_the_end_otherwise(bench):
    equal_time = bench("time_to_loss").equal_time
    rival = {"final_loss": 3.9, "steps": 1000, "seconds": 210.0}
    short = equal_time(0, OURS, rival, 200.0)
    assert short["ours"] == pytest.approx(4.0) and short["ours_final"] == 3.8 and short["rival"] == 3.9
    assert short["ours_minutes"] == pytest.approx(200 / 60)
    assert equal_time(1, OURS, rival, 500.0)["ours"] == 3.8


@pytest.mark.slow  # trains
def test_throughput_trains_its_own_step_count_whatever_recipe_flags_follow(tmp_path, bench):
    # time_to_loss.py hands its recipe flags (a --max_steps among them) to throughput.py: each round must still
    # train --skip + --steps steps, so the timed window is the one asked for
    throughput = bench("throughput")
    report = throughput.main(["--model", "microgpt", "--rounds", "1", "--steps", "2", "--skip", "1", "--json",
                              str(tmp_path / "t.json"), "--", "--preset", "microgpt-toy", "--max_steps", "300",
                              "--per_device_train_batch_size", "2"])
    assert report["steps_per_round"] == {"ours": 3, "stock": 3}
    assert report["preset"] == "microgpt-toy" and report["batch"] == 2
    assert report["ours_tok_s"] > 0 and report["stock_tok_s"] > 0 and report["ratio"] > 0
    with open(tmp_path / "t.json", encoding="utf-8") as f:
        assert json.load(f)["ratio"] == report["ratio"]
