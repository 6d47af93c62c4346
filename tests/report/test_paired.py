"""lntune.report.paired against references written here: brute-force sign enumeration, textbook Holm, a t loop."""

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from lntune.report.paired import (
    PairedResult, bootstrap_ci, holm, min_p, paired, pooled_mean, power_pairs, sign_flip_test, tost,
)

TOL = 1e-9


def brute_force_p(diffs, alternative="two-sided", shift=0.0):
    """Every sign pattern of every pair, statistic = mean over tasks of the task's mean signed (d - shift)."""
    tasks = [[d - shift for d in values] for values in diffs.values()]
    flat = [(t, d) for t, values in enumerate(tasks) for d in values]

    def stat(signs):
        sums = [0.0] * len(tasks)
        for (t, d), s in zip(flat, signs):
            sums[t] += s * d
        return sum(total / len(tasks[t]) for t, total in enumerate(sums)) / len(tasks)

    observed = stat([1] * len(flat))
    null = [stat(signs) for signs in itertools.product((1, -1), repeat=len(flat))]
    greater = sum(v >= observed - TOL for v in null) / len(null)
    less = sum(v <= observed + TOL for v in null) / len(null)
    if alternative == "greater":
        return greater
    if alternative == "less":
        return less
    # scipy's two-sided definition; for a symmetric null also P(|T| >= |t|), checked below
    two = min(1.0, 2 * min(greater, less))
    assert two == pytest.approx(sum(abs(v) >= abs(observed) - TOL for v in null) / len(null))
    return two


STRATIFIED = [
    {"a": [1.0, 2.0, -0.5], "b": [3.0, 0.5]},
    {"a": [1.0, 1.0, 0.0], "b": [-2.0, 0.0]},  # ties and zeros
    {"a": [0.5, 0.5, 0.5], "b": [0.5, -0.5]},  # ties across tasks
    {"a": [2.0, -1.0, 0.0], "b": [1.5, 1.5]},
    {"a": [0.3, -0.7, 1.1], "b": [-0.2, 0.9]},
    {"a": [4.0], "b": [0.1, -0.3, 0.2, 0.6]},  # unequal strata: weights differ from a plain mean
    {"a": [-1.0], "b": [0.5, 0.5, 0.5, 0.6]},  # stratified mean < 0 < mean of all pairs
]


@pytest.mark.parametrize("diffs", STRATIFIED)
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("shift", [0.0, 0.5, -1.0])
def test_sign_flip_equals_brute_force_enumeration(diffs, alternative, shift):
    assert sign_flip_test(diffs, alternative, shift=shift) == pytest.approx(
        brute_force_p(diffs, alternative, shift), abs=1e-12)


def test_stratification_matters():
    # Stratified, the lone -1 is half the statistic (mean -0.2375); pooled over pairs it is a fifth (mean 0.22).
    diffs = STRATIFIED[-1]
    flat = {"all": [d for values in diffs.values() for d in values]}
    assert pooled_mean(diffs) == pytest.approx((-1.0 + 0.525) / 2) and pooled_mean(flat) == pytest.approx(0.22)
    assert sign_flip_test(diffs, "greater") == pytest.approx(brute_force_p(diffs, "greater")) == 17 / 32
    assert sign_flip_test(flat, "greater") == pytest.approx(brute_force_p(flat, "greater")) == 9 / 32


def test_five_positive_pairs_reach_the_exact_minimum():
    diffs = {"sst2": [0.4, 1.0, 2.5, 0.1, 3.0]}
    assert sign_flip_test(diffs) == 2 / 32 == 0.0625
    assert sign_flip_test(diffs, "greater") == 1 / 32
    assert sign_flip_test(diffs, "less") == 1.0
    assert min_p(5) == 0.0625
    assert sign_flip_test({"a": [1.0, 2.0], "b": [0.5, 0.5, 3.0]}) == min_p(5)


def test_min_p():
    assert [min_p(n) for n in range(5)] == [1.0, 1.0, 0.5, 0.25, 0.125]
    with pytest.raises(ValueError):
        min_p(-1)


def test_single_pair_and_all_zero():
    assert sign_flip_test({"a": [2.0]}) == 1.0
    assert sign_flip_test({"a": [2.0]}, "greater") == 0.5
    assert sign_flip_test({"a": [2.0]}, "less") == 1.0
    assert sign_flip_test({"a": [0.0, 0.0, 0.0]}) == 1.0


def test_many_pairs_use_seeded_random_flips():
    rng = np.random.default_rng(3)
    diffs = {"a": list(rng.normal(0.5, 1, 12)), "b": list(rng.normal(0.5, 1, 12))}
    p = sign_flip_test(diffs)
    assert p == sign_flip_test(diffs)  # fixed seed
    assert 1 / 100_001 <= p <= 1
    big = {"a": [1.0] * 25}
    assert sign_flip_test(big, "greater") == pytest.approx(1 / 100_001)  # scipy's +1: never 0


def test_pooled_mean_weighs_tasks_equally_and_rejects_empty():
    assert pooled_mean({"a": [1.0, 3.0], "b": [10.0]}) == 6.0
    for bad in ({}, {"a": []}, {"a": [1.0, float("nan")]}):
        with pytest.raises(ValueError):
            pooled_mean(bad)
    with pytest.raises(ValueError):
        sign_flip_test({"a": [1.0, 2.0]}, "bigger")


def test_bootstrap_ci_contains_the_pooled_mean_and_is_reproducible():
    rng = np.random.default_rng(0)
    diffs = {"a": list(rng.normal(1, 1, 5)), "b": list(rng.normal(0, 2, 4))}
    low, high = bootstrap_ci(diffs)
    assert low < pooled_mean(diffs) < high
    assert bootstrap_ci(diffs) == (low, high)
    low99, high99 = bootstrap_ci(diffs, level=0.99)
    assert low99 <= low and high <= high99


def test_bootstrap_ci_narrows_as_pairs_grow():
    rng = np.random.default_rng(1)
    widths = []
    for n in (4, 16, 64):
        diffs = {"a": list(rng.normal(1, 1, n)), "b": list(rng.normal(0, 1, n))}
        low, high = bootstrap_ci(diffs, n_resamples=2000)
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]


def test_bootstrap_is_stratified_and_degenerate_cases_are_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # mixing tasks would give resamples of means between 0 and 10
        assert bootstrap_ci({"a": [10.0, 10.0, 10.0], "b": [0.0, 0.0, 0.0]}) == (5.0, 5.0)
        assert bootstrap_ci({"a": [1.5]}) == (1.5, 1.5)
        assert bootstrap_ci({"a": [2.0, 2.0, 2.0, 2.0]}) == (2.0, 2.0)
        # a constant task shifts the interval of the varying one by its weight: (10 + b) / 2
        low, high = bootstrap_ci({"a": [10.0, 10.0], "b": [0.0, 1.0, 2.0, 3.0]})
        b_low, b_high = bootstrap_ci({"b": [0.0, 1.0, 2.0, 3.0]})
        assert (low, high) == pytest.approx(((10 + b_low) / 2, (10 + b_high) / 2))
        assert 0.0 <= b_low < 1.5 < b_high <= 3.0
    with pytest.raises(ValueError):
        bootstrap_ci({"a": [1.0, 2.0]}, level=1.0)


def textbook_holm(pvalues):
    """Holm (1979): reject in ascending order while p_(k) <= alpha / (m - k + 1); the adjusted p-value of the
    k-th smallest is the least alpha at which it is rejected, i.e. max_{j <= k} (m - j + 1) p_(j), capped at 1."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    order = sorted(idx, key=lambda i: pvalues[i])
    out = list(pvalues)
    for k, i in enumerate(order, start=1):
        out[i] = min(1.0, max((m - j + 1) * pvalues[order[j - 1]] for j in range(1, k + 1)))
    return out


def test_holm_hand_example():
    # sorted 0.01, 0.02, 0.03, 0.04 with m = 4: 0.04, 0.06, 0.06 (monotone), 0.06
    assert holm([0.04, 0.01, 0.03, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.01, None, 0.5]) == pytest.approx([0.02, None, 0.5])
    assert holm([None, 0.9, 0.6]) == [None, 1.0, 1.0]
    assert holm([]) == []
    with pytest.raises(ValueError):
        holm([0.5, 1.5])


def test_holm_matches_textbook_on_random_lists():
    rng = np.random.default_rng(0)
    for _ in range(300):
        m = int(rng.integers(1, 12))
        ps = [float(p) for p in rng.uniform(0, 1, m) ** 3]
        ps = [None if rng.random() < 0.2 else (round(p, 2) if rng.random() < 0.3 else p) for p in ps]  # ties
        got, want = holm(ps), textbook_holm(ps)
        assert [g is None for g in got] == [w is None for w in want]
        assert [g for g in got if g is not None] == pytest.approx([w for w in want if w is not None], abs=1e-15)
        ranked = sorted((p, g) for p, g in zip(ps, got) if p is not None)
        assert all(a[1] <= b[1] + 1e-15 for a, b in zip(ranked, ranked[1:]))  # monotone
        assert all(g >= p for p, g in ranked)


def test_tost_equivalent_and_shifted():
    rng = np.random.default_rng(0)
    tight = {"a": list(rng.normal(0, 0.3, 8)), "b": list(rng.normal(0, 0.3, 7))}
    assert tost(tight, margin=1.5) < 0.05
    shifted = {"a": list(rng.normal(3, 0.3, 8)), "b": list(rng.normal(3, 0.3, 7))}
    assert tost(shifted, margin=1.5) > 0.5
    small = {"a": [0.1, -0.2, 0.0], "b": [0.3, -0.1]}
    want = max(brute_force_p(small, "greater", -1.0), brute_force_p(small, "less", 1.0))
    assert tost(small, 1.0) == pytest.approx(want)
    with pytest.raises(ValueError):
        tost(small, 0.0)


def test_paired_collects_everything():
    diffs = {"sst2": [1.0, 2.0, 0.5, 1.5], "rte": [0.0, 1.0, -1.0]}
    res = paired(diffs, margin=2.0)
    assert isinstance(res, PairedResult)
    assert res.tasks == ("sst2", "rte") and res.pairs == 7
    assert res.mean == pytest.approx((1.25 + 0.0) / 2)
    assert (res.ci_low, res.ci_high) == bootstrap_ci(diffs)
    assert res.p == sign_flip_test(diffs) and res.p_equiv == tost(diffs, 2.0)
    task, n, mean, low, high = res.per_task[0]
    assert (task, n, mean) == ("sst2", 4, 1.25) and (low, high) == bootstrap_ci({"sst2": diffs["sst2"]})
    assert res.per_task[1][:3] == ("rte", 3, 0.0)
    assert paired(diffs).p_equiv is None
    with pytest.raises(AttributeError):
        res.mean = 0.0  # frozen


@pytest.mark.parametrize("sd, half_width, level", [(1.0, 0.5, 0.95), (2.5, 1.0, 0.9), (0.4, 0.1, 0.99),
                                                   (1.0, 10.0, 0.95), (0.0, 1.0, 0.95), (3.0, 0.2, 0.95)])
def test_power_pairs_matches_a_direct_loop(sd, half_width, level):
    n = 2
    while stats.t.ppf(1 - (1 - level) / 2, n - 1) * sd / math.sqrt(n) > half_width:
        n += 1
    assert power_pairs(sd, half_width, level) == n


def test_power_pairs_rejects_bad_input():
    for args in ((-1.0, 1.0), (1.0, 0.0)):
        with pytest.raises(ValueError):
            power_pairs(*args)
