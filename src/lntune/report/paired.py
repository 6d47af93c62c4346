"""Paired comparisons of two fine-tuning methods run on the same seeds and tasks.

The input is always the paired differences A - B, grouped by task (the stratum), one per seed, on one display
scale (points, e.g. accuracy x100): ``{"sst2": [0.4, -0.1, 0.9], "rte": [1.2, 0.3]}``.

Why these statistics: with 3-5 seeds per task the normal approximations behind a paired t-test are not to be
trusted, so the test is an exact sign-flip (randomisation) test whose only assumption is that, under H0, each
difference is as likely to be d as -d. The effect is the mean over tasks of each task's mean difference, so that
a task run with more seeds does not weigh more than another, and every resampling (sign flips, bootstrap) stays
inside the task strata. Equivalence ("A is as good as B within +-margin points") is two one-sided tests (TOST)
of the same kind. Holm's step-down method adjusts p-values over a family of comparisons; `power_pairs` and
`min_p` size a sweep before it is run.

Numbers are computed by scipy (`scipy.stats.permutation_test`, `scipy.stats.bootstrap`, `scipy.stats.t`); this
module only arranges the strata and the degenerate cases.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

EXACT_MAX_PAIRS = 16  # up to 2**16 sign patterns are enumerated; above, PERMUTATIONS random ones
PERMUTATIONS = 100_000
PERMUTATION_SEED = 0
PERMUTATION_BATCH = 2**15  # bounds the memory of the null distribution's construction
DECIMALS = 9  # the statistic is rounded so that float noise cannot break ties between equal sums


@dataclass(frozen=True)
class PairedResult:
    """Everything a table row needs about one A-vs-B comparison (differences are A - B, in points)."""

    tasks: tuple[str, ...]
    pairs: int  # total number of (task, seed) pairs
    mean: float  # pooled_mean: mean over tasks of each task's mean difference
    ci_low: float  # stratified bootstrap CI of `mean`
    ci_high: float
    p: float  # two-sided exact/Monte Carlo sign-flip p-value of H0 "no difference"
    p_equiv: float | None  # TOST p-value of H0 "|difference| >= margin"; None without a margin
    per_task: tuple[tuple[str, int, float, float, float], ...]  # (task, n, mean, ci_low, ci_high)


def _strata(diffs: dict[str, list[float]]) -> list[tuple[str, np.ndarray]]:
    """Validated float arrays per task: an empty or non-finite stratum has no mean, so it is an error, not a NaN."""
    if not diffs:
        raise ValueError("no tasks: the paired differences are empty")
    out = []
    for task, values in diffs.items():
        arr = np.asarray(list(values), dtype=float)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"task {task!r} has no paired differences")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"task {task!r} has a non-finite difference")
        out.append((task, arr))
    return out


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def pooled_mean(diffs: dict[str, list[float]]) -> float:
    """Mean over tasks of each task's mean difference: tasks weigh equally, whatever their number of seeds."""
    return float(np.mean([arr.mean() for _, arr in _strata(diffs)]))


def _weights(strata: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """pooled_mean as a dot product with the concatenated differences: w_i = 1 / (tasks * n_task(i))."""
    return np.concatenate([np.full(arr.size, 1.0 / (len(strata) * arr.size)) for _, arr in strata])


def sign_flip_test(diffs: dict[str, list[float]], alternative: str = "two-sided", shift: float = 0.0) -> float:
    """p-value of H0 "the paired differences are symmetric around `shift`" by flipping the sign of each d - shift.

    The statistic is pooled_mean of d - shift; signs flip pair by pair and each flipped pair stays in its task,
    so the strata keep their weights. "greater" tests for a pooled mean above `shift`, "less" below it;
    "two-sided" is scipy's 2 * min(one-sided p-values), capped at 1 (the same as P(|T| >= |t|) here because the
    sign-flip null is symmetric around 0).

    Exact (all 2**n sign patterns, via scipy's n_resamples=inf) when n <= EXACT_MAX_PAIRS: with 5 pairs all
    positive, p = 2/32 two-sided, 1/32 one-sided. Above that, PERMUTATIONS random flips from
    default_rng(PERMUTATION_SEED), with scipy's +1 correction, so the p-value is never 0. A difference equal to
    `shift` flips to itself and simply counts in every pattern. Note the exact enumeration of 2**20 patterns
    runs through scipy's Python-level generator and takes seconds.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    strata = _strata(diffs)
    x = np.concatenate([arr for _, arr in strata]) - float(shift)
    w = _weights(strata)

    def statistic(sample: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.round(np.moveaxis(sample, axis, -1) @ w, DECIMALS)

    if x.size == 1:  # scipy needs two observations; the null is {t, -t}
        return _p_from_null(np.array([statistic(x), statistic(-x)]), float(statistic(x)), alternative)
    exact = x.size <= EXACT_MAX_PAIRS
    res = stats.permutation_test(
        (x,), statistic, permutation_type="samples", vectorized=True, alternative=alternative,
        n_resamples=np.inf if exact else PERMUTATIONS, batch=PERMUTATION_BATCH,
        rng=None if exact else np.random.default_rng(PERMUTATION_SEED))
    return float(res.pvalue)


def _p_from_null(null: np.ndarray, observed: float, alternative: str) -> float:
    """The exact p-value from a fully enumerated null, with scipy's definitions (used only for a single pair)."""
    greater = float(np.mean(null >= observed))
    less = float(np.mean(null <= observed))
    return {"greater": greater, "less": less, "two-sided": min(1.0, 2 * min(greater, less))}[alternative]


def bootstrap_ci(diffs: dict[str, list[float]], level: float = 0.95, n_resamples: int = 10_000,
                 seed: int = 0) -> tuple[float, float]:
    """Stratified bootstrap CI of pooled_mean: seeds are resampled within each task, independently.

    scipy.stats.bootstrap gets each task as a separate sample (paired=False), so a resample never mixes tasks.
    Method: BCa when it returns a finite interval (better coverage for skewed differences); otherwise the
    percentile interval of the same bootstrap distribution (scipy's bootstrap_result, no new resamples).
    Tasks whose differences are all equal (a single seed included) cannot vary under resampling; they enter the
    statistic as constants, and if every task is such, the interval is (mean, mean). scipy's warnings about
    degenerate data are silenced: the degenerate cases are handled here.
    """
    _check_level(level)
    strata = _strata(diffs)
    n_tasks = len(strata)
    fixed = sum(float(arr.mean()) for _, arr in strata if np.ptp(arr) == 0)
    varying = tuple(arr for _, arr in strata if np.ptp(arr) > 0)
    mean = pooled_mean(diffs)
    if not varying:
        return mean, mean

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return (fixed + sum(s.mean(axis=axis) for s in samples)) / n_tasks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap(varying, statistic, n_resamples=n_resamples, vectorized=True, paired=False,
                              confidence_level=level, method="BCa", rng=np.random.default_rng(seed))
        low, high = res.confidence_interval
        if not (np.isfinite(low) and np.isfinite(high)):
            res = stats.bootstrap(varying, statistic, n_resamples=0, vectorized=True, paired=False,
                                  confidence_level=level, method="percentile", bootstrap_result=res)
            low, high = res.confidence_interval
    return float(low), float(high)


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (controls the family-wise error rate with no independence assumption).

    Sorted ascending, the i-th (0-based) of m p-values becomes max over j <= i of (m - j) * p_(j), capped at 1,
    so the adjusted values are monotone in the raw ones. None entries (comparisons without a test) are passed
    through and do not count in m.
    """
    present = [(i, float(p)) for i, p in enumerate(pvalues) if p is not None]
    for _, p in present:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values must be in [0, 1], got {p}")
    m = len(present)
    out: list[float | None] = list(pvalues)
    running = 0.0
    for rank, (i, p) in enumerate(sorted(present, key=lambda ip: ip[1])):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def tost(diffs: dict[str, list[float]], margin: float) -> float:
    """Equivalence p-value within +-margin: two one-sided sign-flip tests, p = the larger of the two.

    H0 is "the mean difference is <= -margin or >= +margin"; a small p says the methods are equivalent to within
    `margin` points. Each half is sign_flip_test with the differences centred on the edge of the margin.
    """
    if not margin > 0:
        raise ValueError(f"margin must be positive, got {margin}")
    p_low = sign_flip_test(diffs, "greater", shift=-margin)
    p_high = sign_flip_test(diffs, "less", shift=margin)
    return max(p_low, p_high)


def paired(diffs: dict[str, list[float]], margin: float | None = None, level: float = 0.95) -> PairedResult:
    """The whole comparison: pooled mean, its stratified CI, the two-sided p, TOST p and per-task mean and CI."""
    strata = _strata(diffs)
    low, high = bootstrap_ci(diffs, level=level)
    per_task = []
    for task, arr in strata:
        t_low, t_high = bootstrap_ci({task: arr.tolist()}, level=level)
        per_task.append((task, int(arr.size), float(arr.mean()), t_low, t_high))
    return PairedResult(
        tasks=tuple(task for task, _ in strata), pairs=sum(arr.size for _, arr in strata), mean=pooled_mean(diffs),
        ci_low=low, ci_high=high, p=sign_flip_test(diffs), p_equiv=None if margin is None else tost(diffs, margin),
        per_task=tuple(per_task))


def stratified_t(diffs: dict[str, list[float]], level: float = 0.95) -> tuple[float, float, float]:
    """(pooled_mean, t-interval half-width, degrees of freedom) of the task-stratified mean paired difference.

    The mean weighs tasks equally, so its variance is sum_t s_t**2 / n_t over tasks squared; the tasks' variances
    differ (SICK's seeds spread far more than SST-2's), so the degrees of freedom are Welch-Satterthwaite's,
    not a pooled sum(n_t - 1). Each task needs 2 or more pairs. A sweep's sequential seed rule reads the
    half-width (cheap and deterministic, unlike the bootstrap the report also gives).
    """
    _check_level(level)
    strata = _strata(diffs)
    if any(arr.size < 2 for _, arr in strata):
        raise ValueError("every task needs 2 or more paired differences for a t-interval")
    v = np.array([arr.var(ddof=1) / arr.size for _, arr in strata])
    k = len(strata)
    mean = pooled_mean(diffs)
    if not v.sum() > 0:
        return mean, 0.0, float(sum(arr.size - 1 for _, arr in strata))
    df = float(v.sum() ** 2 / sum(vi**2 / (arr.size - 1) for vi, (_, arr) in zip(v, strata)))
    return mean, float(stats.t.ppf(0.5 + level / 2, df) * math.sqrt(v.sum()) / k), df


def _half_width(n: int, sd: float, level: float) -> float:
    return float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)


def power_pairs(sd: float, half_width: float, level: float = 0.95) -> int:
    """Smallest n (>= 2, the fewest with a t interval) with t_{1-a/2, n-1} * sd / sqrt(n) <= half_width.

    For sizing a sweep: with the sd of paired differences from a pilot, how many seeds x tasks give a CI of the
    wanted precision. The half-width falls monotonically with n, so doubling then bisection finds it.
    """
    _check_level(level)
    if sd < 0 or not half_width > 0:
        raise ValueError(f"need sd >= 0 and half_width > 0, got sd={sd}, half_width={half_width}")
    if _half_width(2, sd, level) <= half_width:
        return 2
    low, high = 2, 4  # invariant: low is too few, high is enough once found
    while _half_width(high, sd, level) > half_width:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        if _half_width(mid, sd, level) <= half_width:
            high = mid
        else:
            low = mid
    return high


def min_p(n_pairs: int) -> float:
    """The smallest two-sided p an exact sign-flip test can reach with n pairs: 2 / 2**n (1 for n <= 1).

    With 3 seeds on one task it is 0.25, so no result can be "significant" however large the effect.
    """
    if n_pairs < 0:
        raise ValueError(f"n_pairs must be >= 0, got {n_pairs}")
    return min(1.0, 2.0 / 2.0**n_pairs)
