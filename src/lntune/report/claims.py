"""The pre-registered contrasts of the CPU reproduction (issue 14) and their verdicts.

Each contrast compares two table rows on paired runs: the same (task, seed) under both methods, so the same
training subset, batch order and head initialisation. It carries at most one claim, credited only to a paper
that makes it (the sections are quoted in docs/results/paper_cpu/README.md); contrasts no paper makes are
lntune's own controls and say so. The list is fixed here, before the sweep's results exist; the report never
adds or drops a contrast after seeing the numbers.

Verdicts: "holds" needs a Holm-adjusted p < 0.05 in the claimed direction; the opposite direction is
"contradicted"; a claim of no difference is "equivalent" when TOST within the design's margin gives a
Holm-adjusted p < 0.05. A claim that is neither is "undecided"; "not decidable" means the runs cannot speak to
it (too few pairs, or one side failed in most runs) and gives the reason.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from lntune.report.aggregate import Cell, higher_is_better, percent_scale
from lntune.spec.records import Record
from lntune.report.paired import PairedResult, holm, min_p, paired, stratified_t
from lntune.report.sequential import Sequential, Stop, contrast_stop

ALPHA = 0.05
SCORE, TIME_TO_BEST, STEP_TIME = "score", "time_to_best", "step_time"
GREATER, LESS, EQUIVALENT = "greater", "less", "equivalent"
HOLDS, CONTRADICTED, EQUIV, UNDECIDED, NOT_DECIDABLE = (
    "holds", "contradicted", "equivalent", "undecided", "not decidable")
DESCRIPTIVE = "descriptive"  # a family whose contrasts get a mean and CI, no test and no verdict
WITHHELD = "withheld"  # a side broke the convergence gate: no verdict until it is extended and rerun


@dataclass(frozen=True)
class Claim:
    statement: str  # what is claimed, in the contrast's terms
    source: str  # the paper and section that make it, or "none: lntune's control"
    expects: str  # greater | less | equivalent (A vs B)


@dataclass(frozen=True)
class Contrast:
    name: str  # "LN - BitFit": differences are A - B
    a: str  # table row of A
    b: str  # table row of B
    claim: Claim
    note: str = ""  # how the test here differs from the paper's setting
    measure: str = SCORE  # score (points) | time_to_best | step_time (% of B's time)


NO_PAPER = "none: lntune's control"
CONTRASTS: tuple[Contrast, ...] = (
    Contrast("LN - BitFit", "LN", "BitFit",
             Claim("LN-tuning scores higher than BitFit", "000 sec. 4.2, table 1", GREATER)),
    Contrast("LN - FT", "LN", "FT",
             Claim("LN-tuning scores below full fine-tuning", "000 sec. 4.2, table 1", LESS)),
    Contrast("LN - Random (all weights)", "LN", "Random (all weights)",
             Claim("LN beats a random subset of as many weights", "002 sec. 3.1, tables 2-3", GREATER),
             "002 trains its output-LN set against a random set of that size; here all LNs against as many weights"),
    Contrast("LN - Random (blocks)", "LN", "Random (blocks)",
             Claim("LN beats a random subset of as many weights", "002 sec. 3.1, tables 2-3", GREATER),
             "the fair form of 002's control: drawn from the transformer blocks, not the word embeddings"),
    Contrast("LN - Head only", "LN", "Head only",
             Claim("LN-tuning adds to training the task head alone", NO_PAPER, GREATER)),
    Contrast("LN (002 set) - BitFit", "LN (002 set)", "BitFit",
             Claim("Tuning the output LayerNorms matches BitFit", "002 sec. 3.1, tables 2-3", EQUIVALENT)),
    Contrast("LN (002 set) - FT", "LN (002 set)", "FT",
             Claim("Tuning the output LayerNorms matches full fine-tuning", "002 abstract and sec. 4", EQUIVALENT)),
    Contrast("Prefix+LN - Prefix", "Prefix+LN", "Prefix",
             Claim("Adding LN-tuning improves prefix-tuning", "000 sec. 4.4, table 3", GREATER)),
    Contrast("Only Bias - Only Gain", "Only Bias", "Only Gain",
             Claim("Tuning only the LN biases beats tuning only the gains", "000 sec. 4.5, table 4", GREATER)),
    Contrast("Fisher 20% - random 20% of LN", "individual f=0.2", "random f=0.2",
             Claim("A Fisher-selected 20% of the LN elements beats a random 20%", NO_PAPER, GREATER),
             "002 fig. 5 compares Fisher masks with all of LN; it has no random mask of the same size"),
    Contrast("LN - FT, time to the best validation score", "LN", "FT",
             Claim("LN-tuning trains in less time than full fine-tuning", "000 sec. 4.3, fig. 2", LESS),
             "% of FT's training time until the kept state", TIME_TO_BEST),
    Contrast("LN - BitFit, time to the best validation score", "LN", "BitFit",
             Claim("LN-tuning takes the least training time of the PEFT methods", "000 sec. 4.3, fig. 2", LESS),
             "% of BitFit's training time until the kept state", TIME_TO_BEST),
    Contrast("LN - FT, time per training step", "LN", "FT",
             Claim("LN-tuning trains in less time than full fine-tuning", "000 sec. 4.3, fig. 2", LESS),
             "% of FT's seconds per step up to the kept state", STEP_TIME),
    Contrast("LN - BitFit, time per training step", "LN", "BitFit",
             Claim("LN-tuning takes the least training time of the PEFT methods", "000 sec. 4.3, fig. 2", LESS),
             "% of BitFit's seconds per step up to the kept state", STEP_TIME),
)


@dataclass(frozen=True)
class Design:
    """The analysis plan of the sweep (RESULTS/design.json; lntune.sweep.config.AnalysisPlan)."""

    margin: float = 1.5
    majority_margin: float = 2.0
    min_r: float = 0.2
    level: float = 0.95
    families: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (family, contrast names); none: Holm over all
    gate: float | None = None  # the largest share of a row's runs on a task that may keep their last evaluation
    gate_rows: tuple[str, ...] | None = None  # rows the gate applies to (None: all)
    sequential: Sequential | None = None  # the seed rule: each contrast is analysed where it stopped

    @classmethod
    def from_json(cls, design: dict | None) -> Design:
        plan = (design or {}).get("analysis") or {}
        numbers = {k: float(v) for k, v in plan.items() if k in ("margin", "majority_margin", "min_r", "level", "gate")}
        return cls(**numbers, families=tuple((k, tuple(v)) for k, v in (plan.get("families") or {}).items()),
                   gate_rows=tuple(plan["gate_rows"]) if plan.get("gate_rows") else None,
                   sequential=Sequential.from_json((design or {}).get("sequential")))

    def family(self, contrast: str) -> str:
        return next((name for name, members in self.families if contrast in members), "")

    def gated(self, row: str) -> bool:
        return self.gate is not None and (self.gate_rows is None or row in self.gate_rows)

    def breaks_gate(self, row: str, last: int, runs: int) -> bool:
        """Whether `row` breaks the convergence gate when `last` of its `runs` on a task kept their last evaluation."""
        return self.gated(row) and runs > 0 and last > self.gate * runs


@dataclass
class Side:
    """One row's runs in a contrast, by (task, seed)."""

    row: str
    runs: dict[tuple[str, int], Record] = field(default_factory=dict)
    failed: set[tuple[str, int]] = field(default_factory=set)  # runs the design's failed-run rule flags
    last: int = 0  # runs whose kept state was the last evaluation (still improving when training stopped)


@dataclass
class Outcome:
    contrast: Contrast
    tasks: tuple[str, ...]
    result: PairedResult | None  # every pair
    clean: PairedResult | None  # pairs without a failed run
    failed: int  # pairs with a failed run on either side
    sides: tuple[Side, Side]
    p_holm: float | None = None
    p_equiv_holm: float | None = None
    pairs: int = 0  # (task, seed) pairs both sides ran
    verdict: str = UNDECIDED
    reason: str = ""
    flags: list[str] = field(default_factory=list)
    family: str = ""  # the design's family (Holm runs within it); "" without families
    stop: Stop | None = None  # where the sequential seed rule stopped this contrast
    t_half: float | None = None  # half-width of the t-interval of the stratified mean (every task 2+ pairs)
    gate: list[str] = field(default_factory=list)  # "row on task: k of n kept their last evaluation" breaking it
    note: str = ""  # the contrast's note, and for times how many runs shared the machine

    def __post_init__(self) -> None:
        self.note = self.note or self.contrast.note

    @property
    def tested(self) -> PairedResult | None:
        """The result whose p-values are reported: none for the descriptive family, which registers no test."""
        return self.result if self.family != DESCRIPTIVE else None


def failed_run(record: Record, design: Design) -> bool:
    """The design's rule: a classifier that never left the majority class, or a correlation near zero."""
    val, metric = record.val or {}, record.metric
    score = val.get(metric)
    if score is None:
        return False
    if metric in ("pearson", "spearman"):
        return score < design.min_r
    majority = (record.majority or {}).get("dev")
    return majority is not None and round(100 * (score - majority), 6) <= design.majority_margin


def kept_last(record: Record) -> bool:
    """Whether the kept state is the final one: the run may have stopped while it was still improving."""
    return (record.val or {}).get("step") == record.steps


def side(row: str, cells: list[Cell], records: list[Record], design: Design) -> Side:
    """The reported runs of `row` at each task's chosen lr (lr_seed runs excluded)."""
    chosen = {(c.model, c.task): c.lr for c in cells if c.row == row}
    out = Side(row)
    for r in records:
        if r.row != row or not r.is_reported:
            continue
        if chosen.get((r.spec.model, r.task)) != r.lr:
            continue
        key = (r.task, r.seed)
        out.runs[key] = r
        out.failed |= {key} if failed_run(r, design) else set()
        out.last += kept_last(r)
    return out


def _points(r: Record) -> float:
    """The main test score on the display scale, signed so that higher is better."""
    score = float(r.score) * percent_scale(r.metric)
    return score if higher_is_better(r.metric) else -score


def differences(a: Side, b: Side, drop: set | None = None) -> dict[str, list[float]]:
    """A - B per task over the (task, seed) pairs both sides ran, in seed order."""
    out: dict[str, list[float]] = {}
    for key in sorted(set(a.runs) & set(b.runs)):
        if drop and key in drop:
            continue
        out.setdefault(key[0], []).append(_points(a.runs[key]) - _points(b.runs[key]))
    return out


def _paired(diffs: dict[str, list[float]], design: Design, margin: bool = True) -> PairedResult | None:
    if sum(len(v) for v in diffs.values()) < 2:
        return None
    return paired(diffs, margin=design.margin if margin else None, level=design.level)


def restrict(s: Side, keep: set[int]) -> Side:
    """The side on the seeds in `keep` only."""
    runs = {k: r for k, r in s.runs.items() if k[1] in keep}
    return Side(s.row, runs, {k for k in s.failed if k in runs}, sum(kept_last(r) for r in runs.values()))


def on_rule_seeds(a: Side, b: Side, rule: Sequential) -> tuple[Stop, Side, Side]:
    """Where the sweep's seed rule stopped A - B (walked again on the recorded runs), and both sides on the seeds
    it stopped at."""
    seeds = sorted({s for _, s in a.runs} | {s for _, s in b.runs})
    tasks = sorted({t for t, _ in a.runs} & {t for t, _ in b.runs})
    runs = {(x.row, t, s): r for x in (a, b) for (t, s), r in x.runs.items()}
    stop = contrast_stop(rule, a.row, b.row, tasks, seeds, runs)
    keep = set(seeds[:stop.seeds])
    return stop, restrict(a, keep), restrict(b, keep)


def gate_breaks(s: Side, design: Design, tasks: tuple[str, ...]) -> list[str]:
    """The tasks on which more than the gate's share of the side's runs kept their last evaluation."""
    if not design.gated(s.row):
        return []
    out = []
    for task in tasks:
        runs = [r for (t, _), r in s.runs.items() if t == task]
        last = sum(kept_last(r) for r in runs)
        if design.breaks_gate(s.row, last, len(runs)):
            out.append(f"{s.row} on {task}: {last} of {len(runs)} runs kept their last evaluation")
    return out


def evaluate(contrast: Contrast, cells: list[Cell], records: list[Record], design: Design) -> Outcome:
    a, b = (side(row, cells, records, design) for row in (contrast.a, contrast.b))
    family = design.family(contrast.name)
    if contrast.measure != SCORE:  # times: relative differences, no equivalence margin on that scale
        timing = time_to_best if contrast.measure == TIME_TO_BEST else step_time
        diffs = timing(records, contrast.a, contrast.b)
        shared = sharing([r for r in records if r.row in (contrast.a, contrast.b) and r.is_reported])
        return Outcome(contrast, tuple(diffs), _paired(diffs, design, margin=False), None, 0, (a, b),
                       pairs=_count(diffs), family=family, note=f"{contrast.note}; {shared}")
    stop = None
    if design.sequential is not None and (contrast.a, contrast.b) in design.sequential.contrasts:
        stop, a, b = on_rule_seeds(a, b, design.sequential)
    diffs = differences(a, b)
    bad = {k for k in a.failed | b.failed if k in a.runs and k in b.runs}
    clean = _paired(differences(a, b, bad), design) if bad else None
    out = Outcome(contrast, tuple(diffs), _paired(diffs, design), clean, len(bad), (a, b), pairs=_count(diffs),
                  family=family, stop=stop)
    if diffs and all(len(v) > 1 for v in diffs.values()):
        out.t_half = stratified_t(diffs, design.level)[1]
    out.gate = gate_breaks(a, design, out.tasks) + gate_breaks(b, design, out.tasks)
    return out


def _count(diffs: dict[str, list[float]]) -> int:
    return sum(len(v) for v in diffs.values())


def adjust(outcomes: list[Outcome]) -> None:
    """Holm over the contrasts that have a test, separately for the difference and the equivalence p-values:
    within each family of the design (the descriptive family gets none), else over all of them."""
    for family in dict.fromkeys(o.family for o in outcomes):
        if family == DESCRIPTIVE:
            continue
        members = [o for o in outcomes if o.family == family]
        ps = holm([o.result.p if o.result else None for o in members])
        eq = holm([o.result.p_equiv if o.result else None for o in members])
        for o, p, e in zip(members, ps, eq):
            o.p_holm, o.p_equiv_holm = p, e


def decide(o: Outcome) -> None:
    """The verdict and its reason; flags that qualify it (failed runs, under-training) go beside it."""
    if o.family == DESCRIPTIVE:
        r = o.result
        o.verdict = DESCRIPTIVE
        o.reason = "fewer than 2 pairs" if r is None else f"{r.mean:+.1f} [{r.ci_low:+.1f}, {r.ci_high:+.1f}]"
        return
    if o.stop is not None and not o.stop.stopped:
        o.flags.append(f"the seed rule has not stopped: it waits for {o.stop.seeds} seeds per task")
    if o.contrast.measure == SCORE and (unpaired := _one_sided_tasks(*o.sides)):
        o.flags.append("; ".join(unpaired))
    if o.gate:
        o.verdict, o.reason = WITHHELD, "convergence gate broken: " + "; ".join(o.gate) + " (extend and rerun)"
        return
    if o.contrast.measure == SCORE:
        for s in o.sides:
            if s.runs and len(s.failed) * 2 > len(s.runs):
                o.verdict, o.reason = NOT_DECIDABLE, f"{s.row} failed in {len(s.failed)} of {len(s.runs)} runs"
            elif s.runs and s.last * 2 > len(s.runs):
                o.flags.append(f"{s.row} kept its last epoch in {s.last} of {len(s.runs)} runs (under-trained?)")
        if o.failed:
            o.flags.append(f"{o.failed} pair(s) with a failed run; without them: {_brief(o.clean)}")
    if o.verdict == NOT_DECIDABLE:
        return
    r = o.result
    if r is None:
        o.verdict, o.reason = NOT_DECIDABLE, "fewer than 2 pairs"
        return
    expects = o.contrast.claim.expects
    floor = min_p(o.pairs) / (2 if expects == EQUIVALENT else 1)  # TOST's tests are one-sided
    if floor >= ALPHA:
        o.verdict = NOT_DECIDABLE
        o.reason = f"{o.pairs} pairs: an exact sign-flip test cannot go below p = {floor:.3g}"
        return
    significant = o.p_holm is not None and o.p_holm < ALPHA
    equivalent = o.p_equiv_holm is not None and o.p_equiv_holm < ALPHA
    ci = f"CI [{r.ci_low:+.1f}, {r.ci_high:+.1f}]"
    if expects == EQUIVALENT:
        o.verdict = EQUIV if equivalent else CONTRADICTED if significant else UNDECIDED
        o.reason = {EQUIV: f"{ci} within ±margin",
                    CONTRADICTED: f"a difference of {r.mean:+.1f} (Holm p {o.p_holm:.3g})",
                    UNDECIDED: f"{ci} reaches beyond ±margin and no difference is shown"}[o.verdict]
    elif significant:
        o.verdict = HOLDS if (r.mean > 0) == (expects == GREATER) else CONTRADICTED
        o.reason = f"{r.mean:+.1f}, Holm p {o.p_holm:.3g}"
    elif equivalent:
        o.verdict, o.reason = EQUIV, f"{ci} within ±margin: no advantage either way"
    else:
        o.verdict, o.reason = UNDECIDED, f"{ci} includes 0 (Holm p {o.p_holm:.3g})"


def _one_sided_tasks(a: Side, b: Side) -> list[str]:
    """Tasks one side has reported runs on and the other has none: a contrast read before both sides ran them
    would otherwise look complete."""
    tasks = {s.row: {t for t, _ in s.runs} for s in (a, b)}
    other = {a.row: b.row, b.row: a.row}
    return [f"{t}: only {row} has runs there so far, so the contrast leaves {t} out"
            for row in (a.row, b.row) for t in sorted(tasks[row] - tasks[other[row]])]


def _brief(r: PairedResult | None) -> str:
    if r is None:
        return "fewer than 2 pairs"
    return f"{r.mean:+.1f} [{r.ci_low:+.1f}, {r.ci_high:+.1f}], p {r.p:.3g}"


def outcomes(cells: list[Cell], records: list[Record], design: Design,
             contrasts: tuple[Contrast, ...] = CONTRASTS) -> list[Outcome]:
    """Every registered contrast whose two rows the sweep ran, tested, Holm-adjusted and decided."""
    rows = {c.row for c in cells}
    out = [evaluate(c, cells, records, design) for c in contrasts if c.a in rows and c.b in rows]
    adjust(out)
    for o in out:
        decide(o)
    return out


def claims_rows(outs: list[Outcome], design: Design) -> list[dict]:
    """claims.csv: one row per contrast with every number the verdict rests on."""
    rows = []
    for o in outs:
        r, c = o.result, o.clean
        tested = o.tested
        rows.append({
            "contrast": o.contrast.name, "claim": o.contrast.claim.statement, "source": o.contrast.claim.source,
            "expects": o.contrast.claim.expects, "tasks": " ".join(o.tasks), "pairs": o.pairs,
            "mean": _num(r and r.mean), "ci_low": _num(r and r.ci_low), "ci_high": _num(r and r.ci_high),
            "p": _num(tested and tested.p, 5), "p_holm": _num(o.p_holm, 5),
            "p_equiv": _num(tested and tested.p_equiv, 5), "p_equiv_holm": _num(o.p_equiv_holm, 5),
            "equivalent": None if o.p_equiv_holm is None else o.p_equiv_holm < ALPHA,
            "margin": design.margin, "failed_pairs": o.failed,
            "mean_without_failed": _num(c and c.mean), "ci_low_without_failed": _num(c and c.ci_low),
            "ci_high_without_failed": _num(c and c.ci_high), "verdict": o.verdict, "reason": o.reason,
            "flags": "; ".join(o.flags), "note": o.note,
            "per_task": "; ".join(f"{t} n={n} {m:+.2f} [{lo:+.2f}, {hi:+.2f}]" for t, n, m, lo, hi in r.per_task)
            if r else "",
        })
        if design.families:  # columns of a design with families (v1's claims.csv keeps its own columns)
            rows[-1].update(family=o.family, t_half_width=_num(o.t_half),
                            seeds_per_task=o.stop.seeds if o.stop else None,
                            rule_stopped=o.stop.stopped if o.stop else None, gate="; ".join(o.gate))
    return rows


def _num(x: float | None, digits: int = 3) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)


def lr_choices(records: list[Record]) -> list[dict]:
    """What the lr_seed's runs scored on validation at each lr, and the lr the other seeds used."""
    picks: dict[tuple, dict] = {}
    for r in records:
        if r.picks_lr:
            picks.setdefault((r.row, r.task), {})[r.lr] = r.val_score
    used: dict[tuple, set] = {}
    for r in records:
        reported = not r.picks_lr and r.spec.kind != "efficiency"
        if reported and (r.row, r.task) in picks:
            used.setdefault((r.row, r.task), set()).add(r.lr)
    return [{"row": row, "task": task, "tried": {f"{lr:g}": v for lr, v in sorted(tried.items(), reverse=True)},
             "chosen": ", ".join(f"{lr:g}" for lr in sorted(used.get((row, task), ()))) or "(later seeds not run yet)"}
            for (row, task), tried in picks.items()]


def under_trained(records: list[Record]) -> dict[str, tuple[int, int]]:
    """row -> (runs that kept their last epoch, reported runs)."""
    out: dict[str, list[int]] = {}
    for r in records:
        if not r.is_reported:
            continue
        n = out.setdefault(r.row, [0, 0])
        n[0] += kept_last(r)
        n[1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def _paired_times(records: list[Record], a: str, b: str, seconds) -> dict[str, list[float]]:
    """Paired relative differences (%) of `seconds(record)` of A vs B over their reported (task, seed) runs."""
    runs: dict[str, dict[tuple, float]] = {a: {}, b: {}}
    for r in records:
        if r.row in runs and not r.picks_lr and (t := seconds(r)):
            runs[r.row][(r.task, r.seed)] = t
    out: dict[str, list[float]] = {}
    for key in sorted(set(runs[a]) & set(runs[b])):
        out.setdefault(key[0], []).append(100.0 * (runs[a][key] - runs[b][key]) / runs[b][key])
    return out


def sharing(records: list[Record]) -> str:
    """How many runs shared the machine while these ran, as their records say: times are read against it."""
    cpus = sorted({m.group(1) for r in records if (m := re.search(r"(\d+) CPUs", r.machine or ""))})
    on = f" on {cpus[0]} CPUs" if len(cpus) == 1 else ""
    counts = {r.in_flight for r in records}
    if not records or None in counts:
        flight = f"how many runs shared the machine{on} was not recorded"
    else:
        low, high = min(counts), max(counts)
        flight = (f"one run at a time{on}" if high == 1 else f"{high} runs at a time{on}" if low == high
                  else f"{low} to {high} runs at a time{on}")
    return flight + _load(records)


def _load(records: list[Record]) -> str:
    """The machine's load while the runs ran (other work included), where every record has it."""
    loads = [r.load for r in records]
    if not loads or None in loads:
        return ""
    return f"; machine load (1-minute average) {min(loads):.1f} to {max(loads):.1f}, mean {sum(loads) / len(loads):.1f}"


def time_to_best(records: list[Record], a: str = "LN", b: str = "FT") -> dict[str, list[float]]:
    """Training time until the kept state (evaluations excluded), A vs B, in % of B's."""
    return _paired_times(records, a, b, lambda r: r.best_seconds)


def step_time(records: list[Record], a: str = "LN", b: str = "FT") -> dict[str, list[float]]:
    """Seconds per optimizer step up to the kept state (evaluations excluded), A vs B, in % of B's: every
    training run measures it, so the contrast has as many pairs as the scores (the timing runs, alone on the
    machine but a few per method, are the efficiency table's)."""
    def per_step(r: Record) -> float | None:
        step = (r.val or {}).get("step")
        return r.best_seconds / step if r.best_seconds and step else None

    return _paired_times(records, a, b, per_step)
