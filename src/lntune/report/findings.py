"""The papers' qualitative findings checked against a sweep: one row per claim, the numbers it rests on here,
and whether it holds. A claim whose cells the sweep lacks is left out rather than guessed.

Scores compare on the display scale (x100 for 0-1 metrics) rounded to one decimal, so "≥" is what a reader
of the tables would conclude; lower-is-better metrics are left out of the averages.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from lntune.report.aggregate import Cell, higher_is_better, percent_scale
from lntune.method import METHODS
from lntune.spec.masks import FISHER_KINDS, RANDOM as RANDOM_MASK
from lntune.method.paper import BITFIT, FULL, LN, MAM, PREFIX, RANDOM, base_method, is_ln_combo, ln_defaults, ln_options
from lntune.report.build import ablation_kind
from lntune.report.efficiency import EffRow, efficiency_rows
from lntune.report.tables import Row, Table, Value
from lntune.spec.records import Record



def having(trait: str, value=True) -> tuple[str, ...]:
    """Registered methods whose trait (lntune.method.base.Method) has `value`, in registry order: e.g.
    having("block", "mha") are paper 000 sec. 4.4's methods that tune attention."""
    return tuple(n for n, m in METHODS.items() if getattr(m, trait) == value)
TRAIN, INFER = "train_step_seconds", "infer_batch_seconds"


@dataclass
class Finding:
    claim: str  # the paper's statement, as tested here
    source: str  # where the paper makes it
    here: str  # the numbers measured in this sweep
    holds: bool
    margin: float | None = None  # how far the deciding comparison is from a tie, display scale
    noise: float | None = None  # mean seed (or timing-repeat) std of what is compared; None with one of each

    @property
    def qualifier(self) -> str:
        """"within noise" when the deciding difference is within the seeds' spread; "one seed" without a spread."""
        if self.margin is not None and self.noise is not None and abs(self.margin) <= self.noise:
            return "within noise"
        if self.margin is not None and self.noise is None:
            return "one seed"
        return ""

    @property
    def verdict(self) -> str:
        """yes / no, with its qualifier."""
        word = "yes" if self.holds else "no"
        return f"{word} ({self.qualifier})" if self.qualifier else word


def _score(c: Cell) -> float:
    return round(c.mean * percent_scale(c.metric), 1)


def _noise(cells: list[Cell]) -> float | None:
    """Mean seed std (display scale) of the cells run with more than one seed."""
    stds = [c.std * percent_scale(c.metric) for c in cells if len(c.scores) > 1]
    return round(statistics.fmean(stds), 1) if stds else None


def _compare(a: list[Cell], b: list[Cell]) -> tuple[float, float, list[str], float | None] | None:
    """Mean display score of a and of b over the higher-is-better tasks both have, the tasks, and the cells'
    noise; None if they share no task."""
    sa, sb = {c.task: c for c in a}, {c.task: c for c in b}
    tasks = [t for t in sa if t in sb and higher_is_better(sa[t].metric)]
    if not tasks:
        return None
    return (round(statistics.fmean(_score(sa[t]) for t in tasks), 1),
            round(statistics.fmean(_score(sb[t]) for t in tasks), 1), tasks,
            _noise([sa[t] for t in tasks] + [sb[t] for t in tasks]))


def _versus(claim: str, source: str, a_name: str, a: list[Cell], b_name: str, b: list[Cell],
            extra: str = "") -> Finding | None:
    got = _compare(a, b)
    if got is None:
        return None
    ma, mb, tasks, noise = got
    scope = tasks[0] if len(tasks) == 1 else f"mean over {', '.join(tasks)}"
    return Finding(claim, source, f"{a_name} {ma:.1f} vs {b_name} {mb:.1f} ({scope}){extra}", ma >= mb,
                   round(ma - mb, 1), noise)


def _pairs(claim: str, source: str, pairs: list[tuple[Cell, Cell]], name=lambda c: c.row) -> Finding | None:
    """Holds when the first cell of every pair scores ≥ the second; the closest pair decides the margin."""
    if not pairs:
        return None
    diffs = [_score(a) - _score(b) for a, b in pairs]
    text = "; ".join(f"{name(a)} {_score(a):.1f} vs {name(b)} {_score(b):.1f}" for a, b in pairs)
    wins = sum(d >= 0 for d in diffs)
    return Finding(claim, source, f"{wins} of {len(pairs)}: {text}", wins == len(pairs), round(min(diffs), 1),
                   _noise([c for p in pairs for c in p]))


def _plain_ln(c: Cell, defaults: dict) -> bool:
    return c.method == LN and not c.mask_kind and not ablation_kind(c, defaults)


def _option(c: Cell, key: str, value: str) -> bool:
    return c.method == LN and not c.mask_kind and ln_options(c.options).get(key) == value


def score_findings(cells: list[Cell], model: str) -> list[Finding]:
    """Paper 000 tables 1, 3, 4 and paper 002 table 2 / fig. 5 claims for one model's cells."""
    cells = [c for c in cells if c.model == model]
    defaults = ln_defaults()
    main = [c for c in cells if c.group == "main"]
    ln = [c for c in main if _plain_ln(c, defaults)]
    bitfit = [c for c in main if c.method == BITFIT]
    random = [c for c in cells if c.method == RANDOM]
    out = []
    para = ""
    if ln and bitfit and ln[0].tuned_pct and bitfit[0].tuned_pct:
        a, b = ln[0].tuned_pct, bitfit[0].tuned_pct
        para = f"; #Para. {a:.3g}% vs {b:.3g}% ({a / b:.2f}x)"
    out.append(_versus("LN-tuning ≥ BitFit, with fewer parameters", "000 table 1; 002 table 2",
                       "LN", ln, "BitFit", bitfit, para))
    out.append(_versus("LN-tuning ≥ a random subset of as many weights", "002 table 2", "LN", ln, "random", random))

    unified = [c for c in cells if c.group == "unified"]

    def pairs(bases: tuple[str, ...], combo_first: bool) -> list[tuple[Cell, Cell]]:
        got = []
        for combo in (c for c in unified if is_ln_combo(c.method) and base_method(c.method) in bases
                      and higher_is_better(c.metric)):
            base = [c for c in unified + main if c.method == base_method(combo.method) and c.task == combo.task]
            if base:
                got.append((combo, base[0]) if combo_first else (base[0], combo))
        return got

    out.append(_pairs("Prefix+LN ≥ Prefix", "000 table 3", pairs((PREFIX,), True)))
    out.append(_pairs("X+LN ≥ X when X tunes attention (prefix, sequential adapter on MHA)", "000 table 3, sec. 4.4",
                      pairs(having("block", "mha"), True)))
    out.append(_pairs("X+LN ≤ X when X tunes the FFN (parallel / sequential adapter on FFN)", "000 table 3, sec. 4.4",
                      pairs(having("block", "ffn"), False)))

    abl = [c for c in cells if c.group == "ablation"]
    pick = lambda k, v: [c for c in abl if _option(c, k, v)]  # noqa: E731
    out.append(_versus("Only bias ≥ only gain", "000 table 4", "bias", pick("terms", "bias"),
                       "gain", pick("terms", "gain")))
    out.append(_versus("LN after MHA only ≥ LN after FFN only", "000 table 4", "MHA", pick("modules", "mha"),
                       "FFN", pick("modules", "ffn")))
    out.append(_versus("Bottom half of the layers ≥ top half (BERT-base; the reverse on BERT-large)", "000 table 4",
                       "bottom", pick("layers", "bottom-half"), "top", pick("layers", "top-half")))
    out += _mask_findings(cells)
    return [f for f in out if f is not None]


def _mask_findings(cells: list[Cell]) -> list[Finding]:
    """Each Fisher mask kind vs the random mask at the same task and fraction (paper 002 fig. 5)."""
    masked = [c for c in cells if c.mask_kind and c.fraction is not None]
    random = {(c.task, c.fraction): c for c in masked if c.mask_kind == RANDOM_MASK}
    out = []
    for kind in FISHER_KINDS:
        pairs = [(c, random[(c.task, c.fraction)]) for c in masked if c.mask_kind == kind
                 and (c.task, c.fraction) in random and higher_is_better(c.metric)]
        out.append(_pairs(f"A Fisher-selected LN mask ({kind}) ≥ a random LN mask of the same size",
                          "002 sec. 3.2-3.5, fig. 5", pairs, lambda c: f"{c.mask_kind} {c.fraction:g} {c.task}"))
    return out


def _timed(claim: str, source: str, here: str, holds: bool, margin: float, spreads: list[float | None]) -> Finding:
    """A timing claim, flagged 'within noise' when the deciding gap is no larger than the timing repeats' std."""
    if not spreads or any(sd is None for sd in spreads):
        return Finding(claim, source, here, holds)  # one timing run per method: no spread to compare with
    return Finding(claim, source, here, holds, round(margin, 1), round(statistics.fmean(spreads), 1))


def efficiency_findings(rows: list[EffRow], model: str) -> list[Finding]:
    """Paper 000 fig. 2 claims from the timing runs, relative to full fine-tuning = 100."""
    mine = [e for e in rows if e.model == model and e.relative.get(TRAIN) is not None]
    rel = {e.method: e.relative for e in mine}
    sd = {e.method: e.spread for e in mine}
    name = {e.method: e.row for e in mine}
    if LN not in rel:
        return []
    out = []
    peft = {m: r for m, r in rel.items() if m != FULL}
    fastest = min(peft, key=lambda m: peft[m][TRAIN])
    rival = min((m for m in peft if m != LN), key=lambda m: peft[m][TRAIN], default=None)
    ln = rel[LN]
    if rival:
        out.append(_timed("LN-tuning has the shortest training step of all methods", "000 fig. 2, sec. 4.3",
                          f"LN {ln[TRAIN]:.1f}; fastest {name[fastest]} {peft[fastest][TRAIN]:.1f} (FT = 100)",
                          ln[TRAIN] <= peft[rival][TRAIN], peft[rival][TRAIN] - ln[TRAIN],
                          [sd[LN].get(TRAIN), sd[rival].get(TRAIN)]))
    added = {m: r[INFER] for m, r in rel.items() if m in having("adds_modules") and r.get(INFER) is not None}
    if added and ln.get(INFER) is not None:
        low = min(added, key=added.get)
        out.append(_timed("LN-tuning infers no slower than methods that add modules", "000 fig. 2, sec. 4.3",
                          f"LN {ln[INFER]:.1f}; fastest adding modules {name[low]} {added[low]:.1f} (FT = 100)",
                          ln[INFER] <= added[low], added[low] - ln[INFER],
                          [sd[LN].get(INFER), sd[low].get(INFER)]))
    slow = max(peft, key=lambda m: peft[m][TRAIN])
    out.append(_timed("Every PEFT method trains in under 90% of FT's time (BERT-base)", "000 fig. 2(a)",
                      f"slowest {name[slow]} {peft[slow][TRAIN]:.1f} (FT = 100)", peft[slow][TRAIN] < 90,
                      90 - peft[slow][TRAIN], [sd[slow].get(TRAIN)]))
    runner_up = max((m for m in peft if m != MAM), key=lambda m: peft[m][TRAIN], default=None)
    if MAM in peft and runner_up:
        out.append(_timed("MAM is the slowest PEFT method to train", "000 sec. 4.3",
                          f"{name[MAM]} {peft[MAM][TRAIN]:.1f}; slowest {name[slow]} {peft[slow][TRAIN]:.1f}",
                          slow == MAM, peft[MAM][TRAIN] - peft[runner_up][TRAIN],
                          [sd[MAM].get(TRAIN), sd[runner_up].get(TRAIN)]))
    adapter = next((m for m in having("adapter") if m in peft), None)
    if adapter and PREFIX in peft and peft[PREFIX].get(INFER) is not None:
        a, p = peft[adapter], peft[PREFIX]
        gaps = {TRAIN: p[TRAIN] - a[TRAIN], INFER: p[INFER] - a[INFER]}
        closest = min(gaps, key=gaps.get)
        out.append(_timed("Adapters train and infer faster than prefix-tuning (NLU)", "000 sec. 4.3",
                          f"train {name[adapter]} {a[TRAIN]:.1f} vs {name[PREFIX]} {p[TRAIN]:.1f}; "
                          f"infer {a[INFER]:.1f} vs {p[INFER]:.1f}",
                          a[TRAIN] <= p[TRAIN] and a[INFER] <= p[INFER], gaps[closest],
                          [sd[adapter].get(closest), sd[PREFIX].get(closest)]))
    return out


def findings_table(cells: list[Cell], records: list[Record]) -> Table | None:
    eff = efficiency_rows(records)
    models = list(dict.fromkeys([c.model for c in cells] + [e.model for e in eff]))
    table = Table("findings", "The papers' findings, checked on this sweep",
                  ["Source", "Measured here", "Holds", "Qualifier"], label_header="Finding")
    for model in models:
        found = score_findings(cells, model) + efficiency_findings(eff, model)
        if found and len(models) > 1:
            table.rows.append(Row(model, [], section=True))
        # the qualifier ("within noise", "one seed") is a column of its own, so findings.csv keeps it too
        table.rows += [Row(f.claim, [Value(f.source), Value(f.here), Value(f.verdict, float(f.holds)),
                                     Value(f.qualifier or "-")]) for f in found]
    if not table.rows:
        return None
    table.notes.append("Scores on the table scale (x100 for 0-1 metrics), rounded to one decimal, from the cells "
                       "of the tables below (kept lr, mean over seeds); a tie counts as ≥. Efficiency relative to "
                       "full fine-tuning = 100 (mean over a method's timing runs). 'within noise': the deciding "
                       "difference is no larger than the mean seed std of the cells compared (for timings: the std "
                       "over timing repeats, when each method was timed more than once); 'one seed': no spread to "
                       "compare with. Claims whose rows the sweep lacks are left out.")
    return table
