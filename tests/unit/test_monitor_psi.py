"""Tests of engine.monitor: PSI against hand-worked values, fixed bins, baselines and the live windows."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.datasets import read_credit_applications
from engine.metrics import Metrics
from engine.monitor.baseline import BaselineError, build_baseline, read_baseline
from engine.monitor.psi import EPSILON, bin_counts, decile_edges, grade, psi, shares
from engine.policy.loader import load_policies
from engine.runtime.service import Decider

ROOT = Path(__file__).resolve().parents[2]


def test_psi_matches_a_hand_worked_example():
    """Train 25/25/25/25 %, live 10/20/30/40 %: PSI = 0.137444 + 0.011157 + 0.009116 + 0.070501 = 0.228218."""
    # (0.1-0.25)ln(0.4) = 0.1374436; (0.2-0.25)ln(0.8) = 0.0111572; (0.3-0.25)ln(1.2) = 0.0091161;
    # (0.4-0.25)ln(1.6) = 0.0705006 (worked by hand, then checked on a calculator)
    assert psi([0.25] * 4, [10, 20, 30, 40]) == pytest.approx(0.2282175, abs=1e-6)


def test_an_empty_live_bin_uses_the_epsilon_floor():
    """Train 50/50, live 0/10: the empty bin counts as EPSILON = 1e-4, giving 4.257745 + 0.346574."""
    expected = (EPSILON - 0.5) * math.log(EPSILON / 0.5) + 0.5 * math.log(2)
    assert expected == pytest.approx(4.604319, abs=1e-6)
    assert psi([0.5, 0.5], [0, 10]) == pytest.approx(expected)


def test_psi_is_zero_for_the_same_distribution_and_nan_without_data():
    """Equal shares give 0; no live value gives NaN (no number is invented); unequal bins are refused."""
    assert psi([0.1, 0.2, 0.7], [10, 20, 70]) == pytest.approx(0.0)
    assert math.isnan(psi([0.5, 0.5], [0, 0]))
    with pytest.raises(ValueError, match="3 training bins but 2 live bins"):
        psi([0.2, 0.3, 0.5], [1, 2])


def test_bins_are_right_closed_and_ignore_missing_values():
    """Edges [1, 2, 3]: v <= 1, (1, 2], (2, 3], > 3; NaN is not counted in any bin."""
    counts = bin_counts(np.array([0.5, 1.0, 1.5, 2.0, 3.0, 3.5, np.nan]), [1.0, 2.0, 3.0])
    assert counts.tolist() == [2, 2, 1, 1]


def test_decile_edges_split_training_data_in_tenths_and_stay_fixed():
    """1..100 gives nine edges with 10 % of the rows in each bin; live data later is binned on the same edges."""
    train = np.arange(1, 101, dtype=float)
    edges = decile_edges(train)
    assert len(edges) == 9
    assert shares(bin_counts(train, edges)) == pytest.approx([0.1] * 10)
    shifted = bin_counts(train * 2, edges)  # the same values doubled land in the upper bins
    assert shifted[-1] == 55 and shifted[0] == 5


def test_grades_follow_the_credit_risk_convention():
    """PSI < 0.1 is stable, 0.1 up to 0.25 watch, 0.25 and above act."""
    assert [grade(v) for v in (0.05, 0.1, 0.2, 0.25, 1.0, float("nan"))] == ["stable", "watch", "watch", "act", "act", "n/a"]


def test_a_baseline_round_trips_and_refuses_other_inputs(tmp_path):
    """build -> write -> read gives the same bins; a file for other inputs is refused naming it."""

    class Spec:
        def __init__(self, name, type, categories=None):
            self.name, self.type, self.categories = name, type, categories

    x = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, np.nan], [4.0, 1.0]])
    baseline = build_baseline("m", "1", [Spec("a", "numeric"), Spec("c", "categorical", ("x", "y"))], x, np.array([0.1, 0.2, 0.3, 0.4]))
    (tmp_path / "baseline.json").write_text(baseline.to_json())
    assert read_baseline(tmp_path, ["a", "c"]) == baseline
    assert baseline.features[1].missing == 0.25 and baseline.features[1].shares == pytest.approx((1 / 3, 2 / 3))
    with pytest.raises(BaselineError, match=r"baseline\.json: inputs"):
        read_baseline(tmp_path, ["a", "b"])
    (tmp_path / "baseline.json").write_text(json.dumps({"schema": "other"}))
    with pytest.raises(BaselineError, match="schema"):
        read_baseline(tmp_path)


def test_the_bundled_models_have_baselines_for_their_card_inputs():
    """Every bundled model directory holds a baseline.json whose inputs are the card's, built on its training rows."""
    for card in sorted((ROOT / "model_artifacts").glob("*/*/card.json")):
        names = [f["name"] for f in json.loads(card.read_text())["features"]]
        baseline = read_baseline(card.parent, names)
        assert baseline is not None and baseline.rows > 100, card.parent
        assert sum(baseline.score_shares) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def applications():
    """1,000 applications drawn at random (seeded) from the training file: a sample of the training population."""
    return random.Random(7).sample(read_credit_applications(ROOT / "data" / "credit_data.csv"), 1000)


def _stability(applications, change=None):
    decider = Decider(load_policies(ROOT), metrics=Metrics())
    for a in applications:
        decider.decide("credit_application", change(a) if change else a, version="1")
    decider.close()
    return decider, decider.drift.refresh()[("credit_default", "1")]


def test_live_training_like_traffic_is_stable(applications):
    """1,000 applications sampled from the training file: every input and the score stay below the watch level."""
    decider, s = _stability(applications)
    assert s["n"] == 1000
    assert s["score_psi"] < 0.1
    assert max(f["psi"] for f in s["features"].values()) < 0.1
    assert decider.metrics.get("verdict_psi_sample_size", model="credit_default", version="1") == 1000


def test_doubled_incomes_raise_the_income_psi_past_the_act_level(applications):
    """Incomes x2 move income past 0.25 (act) and show in the gauge; an input the change does not touch stays stable."""
    decider, s = _stability(applications, lambda a: dict(a, income=a["income"] * 2) if "income" in a else a)
    assert s["features"]["income"]["psi"] >= 0.25
    assert s["features"]["age"]["psi"] < 0.1
    gauge = decider.metrics.get("verdict_feature_psi", model="credit_default", version="1", feature="income")
    assert gauge == pytest.approx(s["features"]["income"]["psi"])


def test_missing_and_unseen_categories_are_counted_apart(applications):
    """Without home, its missing share is 1; with a category the training data never had, its unseen share is 1 (missing 0).

    The credit flow's schema refuses unknown categories, so the window is fed directly, as a
    flow with an open categorical input would feed it.
    """
    from engine.models.runtime import load_model
    from engine.monitor.live import ModelWindow

    directory = ROOT / "model_artifacts" / "credit_default" / "1"
    model = load_model(directory)
    baseline = read_baseline(directory, model.feature_names)
    gone, odd = ModelWindow(model, baseline, 100), ModelWindow(model, baseline, 100)
    for a in applications[:50]:
        gone.add({k: v for k, v in a.items() if k != "home"}, 0.2)
        odd.add(dict(a, home="boat"), 0.2)
    home_gone, home_odd = gone.stability()["features"]["home"], odd.stability()["features"]["home"]
    assert home_gone["missing"] == 1.0 and home_gone["unseen"] == 0.0
    assert home_odd["unseen"] == 1.0 and home_odd["missing"] == 0.0


def test_a_model_without_a_baseline_is_not_monitored(tmp_path, applications):
    """A root whose model has no baseline.json serves as before; the monitor tracks nothing for it."""
    root = tmp_path / "root"
    shutil.copytree(ROOT, root, ignore=shutil.ignore_patterns(".venv", ".git", "audit", "tests", "data", "baseline.json", "*.png"))
    decider = Decider(load_policies(root), metrics=Metrics())
    decider.decide("credit_application", applications[0], version="1")
    decider.close()
    assert decider.drift.refresh() == {}


def test_the_window_keeps_the_row_the_model_scored_without_encoding_again(applications, monkeypatch):
    """The drift window takes each decision's scored row (Outcome.rows): equal to the model's encoding, and nothing is encoded a second time."""
    decider = Decider(load_policies(ROOT), metrics=Metrics())
    decisions = [decider.decide("credit_application", a, version="1") for a in applications[:20]]
    model = decider.resolve("credit_application", "1")[0].models[0].model
    expected = np.vstack([model.encode(d.outcome.features) for d in decisions])
    monkeypatch.setattr(model, "encode", lambda values: pytest.fail("the drift monitor encoded a row again"))
    decider.drift.drain()
    decider.close()
    window = decider.drift._windows[id(model)]
    assert window.count == 20
    assert window._x[:20].tobytes() == expected.tobytes()
