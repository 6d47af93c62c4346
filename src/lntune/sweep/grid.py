"""Expand a sweep config into runs: one per (model, task, run entry, mask, seed, lr), plus timing runs.

A run's key is the sha256 of the canonical JSON of its spec: everything that determines its result
(effective method options included, so a changed default is a changed key) and nothing that does
not (row labels, groups, worker counts, paths).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from lntune.errors import LntuneError
from lntune.heads import get_head
from lntune.spec.masks import RANDOM
from lntune.spec.metrics import greater_is_better
from lntune.spec.records import Record
from lntune.spec.run import RunSpec, canonical
from lntune.sweep.config import (
    LATE_FIELDS,
    MACHINE_FIELDS,
    ModelEntry,
    RunEntry,
    SweepConfig,
    TaskEntry,
    fisher_pool,
    model_tasks,
    run_tasks,
)
from lntune.data import get_task, resolve_data_dir
from lntune.method import build_method, METHODS, parts
from lntune.method.options import for_build, merge, paper_preset
from lntune.model.load import resolve
from lntune.report.sequential import allowed_seeds
from lntune.spec.train import TrainConfig


@dataclass
class Run:
    key: str
    spec: RunSpec  # what the key hashes
    row: str  # table row label
    group: str  # table the run feeds
    lr: float
    lr_rank: int  # position of lr in the method's priority list
    seed: int
    metric: str  # the task's main metric
    task_kind: str  # nlu | nlg
    source: str  # the config entry it came from, for messages
    machine: dict = field(default_factory=dict)  # TrainConfig fields outside the spec (config.MACHINE_FIELDS)
    picks_lr: bool = False  # a run of the sweep's lr_seed: it chooses the lr of the other seeds and is not reported

    @property
    def kind(self) -> str:
        return self.spec.kind

    def describe(self) -> str:
        s = self.spec
        mask = f" {s.mask.kind} f={s.mask.fraction:g}" if s.mask else ""
        what = "timing" if self.kind == "efficiency" else f"lr {self.lr:g} seed {self.seed}"
        return f"{s.task} {s.method}{mask} {what} ({self.source})"


def spec_key(spec: RunSpec | dict) -> str:
    """The run key of a spec: a RunSpec, or the JSON a record holds (hashed as it is)."""
    return spec.key() if isinstance(spec, RunSpec) else hashlib.sha256(canonical(spec)).hexdigest()


def lr_list(cfg: SweepConfig, method: str) -> list[float]:
    """A method's own list, else its family's (Method.lr_family): anything with LN, full fine-tuning, the others."""
    if method in cfg.lrs:
        return cfg.lrs[method]
    families = [m.lr_family for m in parts(method)]
    if "ln" in families:
        return cfg.lrs["ln"]
    return cfg.lrs[families[0] if len(families) == 1 else "other"]


def effective_options(method: str, options: dict, seed: int, preset: dict | None = None) -> dict:
    """Every option of every part, defaults filled in; parts that draw random numbers get the run's
    seed unless the config fixes theirs, so seeds vary initialisation as well as data order."""
    parts = method.split("+")
    nested = dict(options) if len(parts) > 1 else {method: dict(options)}
    seeded = {p: {"seed": seed} for p in parts if "seed" in METHODS[p].Config.__dataclass_fields__}
    built = build_method(method, **for_build(method, merge(seeded, preset or {}, nested)))
    return json.loads(canonical(built.options()))


# The papers' models by hub id: their presets resolve offline (a sweep expands before anything downloads).
PAPER_MODELS = {
    "bert-base-uncased": ("bert", 768, 12), "google-bert/bert-base-uncased": ("bert", 768, 12),
    "bert-large-uncased": ("bert", 1024, 24), "google-bert/bert-large-uncased": ("bert", 1024, 24),
    "gpt2-medium": ("gpt2", 1024, 24), "openai-community/gpt2-medium": ("gpt2", 1024, 24),
}


@lru_cache(maxsize=None)
def _preset(model: str, method: str) -> dict:
    from types import SimpleNamespace

    if model in PAPER_MODELS:
        kind, hidden, layers = PAPER_MODELS[model]
        config = SimpleNamespace(model_type=kind, hidden_size=hidden, num_hidden_layers=layers)
    else:
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(resolve(model))
        except OSError as e:
            raise LntuneError(
                f"preset paper: cannot read the config of {model} ({e}); it needs the hub or a local copy"
            ) from e
    return paper_preset(method, config)


@lru_cache(maxsize=None)
def data_fingerprint(task: str, data_dir: str | None) -> str:
    """sha256 of the task's local files ("hub" when it reads none), so changed data is a changed key."""
    t, root = get_task(task), resolve_data_dir(data_dir)
    files: set[Path] = set()
    for split in t.splits if root else ():
        try:
            p = t.local_path(root, split)
        except NotImplementedError:
            continue
        if p is not None and p.exists():
            files |= {p} if p.is_file() else {f for f in p.rglob("*") if f.is_file()}
    if not files:
        return "hub"
    h = hashlib.sha256()
    for f in sorted(files):
        name = f.relative_to(root) if f.is_relative_to(root) else Path(f.name)
        h.update(f"{name.as_posix()}|{f.stat().st_size}|".encode())
        h.update(f.read_bytes())
    return "sha256:" + h.hexdigest()[:32]


def _batch_size(cfg: SweepConfig, model: ModelEntry, te: TaskEntry, entry: RunEntry, method: str) -> int:
    if "batch_size" in entry.train:
        return entry.train["batch_size"]
    for table in (model.batch_sizes.get(te.name, {}), te.batch_sizes, cfg.batch_sizes):
        if method in table:
            return table[method]
        if "default" in table:
            return table["default"]
    return te.train.get("batch_size", cfg.train.get("batch_size", TrainConfig.batch_size))


def train_settings(cfg: SweepConfig, te: TaskEntry, entry: RunEntry, **fixed) -> tuple[dict, dict]:
    """(TrainConfig fields of the spec, machine fields that reach the worker only)."""
    out = asdict(TrainConfig())
    out.pop("progress")
    for layer in (cfg.train, te.train, entry.train, fixed):
        out.update(layer)
    machine = {k: out.pop(k) for k in MACHINE_FIELDS if k in out}
    try:
        TrainConfig(**out, **machine)  # its own checks, here rather than in every worker
    except LntuneError as e:
        raise LntuneError(f"{cfg.path}: runs[{entry.index}] on {te.name}: {e}") from None
    for k in LATE_FIELDS:
        if out[k] == getattr(TrainConfig, k):
            del out[k]
    return out, {k: v for k, v in machine.items() if v != getattr(TrainConfig, k)}


def task_info(te: TaskEntry) -> tuple[str, str]:
    """(main metric, nlu | nlg)."""
    t = get_task(te.name)
    metric = te.metric or (t.gen_metrics[0] if te.generate else t.metric)
    return metric, "nlg" if get_head(t.head).generates else "nlu"


def _masks(entry: RunEntry) -> list[tuple[str, float] | None]:
    if not entry.mask:
        return [None]
    return [(k, f) for k in entry.mask["kinds"] for f in entry.mask["fractions"]]


def _row(entry: RunEntry, mask) -> str:
    if mask is None:
        return entry.row or entry.method
    return (entry.row or "{kind} f={fraction}").format(kind=mask[0], fraction=f"{mask[1]:g}")


def mask_spec(cfg: SweepConfig, model: ModelEntry, task: str, kind: str, fraction: float, seed: int,
              data: dict[str, str]) -> dict:
    if kind == RANDOM:
        return {"kind": kind, "fraction": fraction, "seed": seed}
    f = cfg.fisher
    pool = fisher_pool(cfg, model) if kind in ("global", "cv") else [task]
    fisher = {"examples": f.examples, "batch_size": f.batch_size, "max_length": f.max_length, "seed": f.seed,
              "tasks": sorted(pool), "data": {t: data[t] for t in sorted(pool)}}
    return {"kind": kind, "fraction": fraction, "fisher": fisher}


@dataclass
class Plan:
    runs: list[Run]  # every run that can be named now
    waiting: int = 0  # runs of later seeds whose lr the lr_seed's runs have not chosen yet


def expand(cfg: SweepConfig, data_dir: str | None = None, done: dict[str, Record] | None = None) -> list[Run]:
    """Every run of the sweep that can be named now (see plan)."""
    return plan(cfg, data_dir, done).runs


def plan(cfg: SweepConfig, data_dir: str | None = None, done: dict[str, Record] | None = None) -> Plan:
    """Every run of the sweep, timing runs first, then by lr priority, seed and config order; a spec
    that two entries share runs once (under the first entry's row and group).

    With `cfg.lr_seed`, the other seeds' runs of a cell are named once `done` (finished records by key)
    holds all of the lr_seed's runs of that cell: their lr is the one with the best validation score."""
    data_dir = data_dir or cfg.data_dir
    data = {t.name: data_fingerprint(t.name, str(data_dir) if data_dir else None) for t in cfg.tasks}
    runs: list[tuple[tuple, Run]] = []
    order = {t.name: i for i, t in enumerate(cfg.tasks)}
    waiting = 0
    for mi, model in enumerate(cfg.models):
        runs += [((0, mi, i), r) for i, r in enumerate(_efficiency_runs(cfg, model, data))]
        allowed = _allowed(cfg, model, done or {})
        for entry in cfg.runs:
            for task in run_tasks(cfg, model, entry):
                named, w = _train_runs(cfg, model, entry, task, data, done or {}, allowed)
                waiting += w
                for (rank, si, n), run in named:
                    runs.append(((1, rank, si, mi, entry.index, order[task], n), run))
    seen, out = set(), []
    for _, run in sorted(runs, key=lambda x: x[0]):
        if run.key not in seen:
            seen.add(run.key)
            out.append(run)
    return Plan(out, waiting)


def _allowed(cfg: SweepConfig, model: ModelEntry, done: dict[str, Record]) -> dict[str, int]:
    """row -> reported seeds the sequential rule lets run now (rows outside the rule: absent, all of them)."""
    if cfg.sequential is None:
        return {}

    tasks, seeds = row_tasks_seeds(cfg, model)
    records = [r for r in done.values() if r.model == model.name]
    return allowed_seeds(cfg.sequential, tasks, seeds, records)


def row_tasks_seeds(cfg: SweepConfig, model: ModelEntry) -> tuple[dict[str, list[str]], dict[str, list[int]]]:
    """Each row's tasks and reported seeds (in order, the lr_seed left out) for `model`."""
    tasks: dict[str, list[str]] = {}
    seeds: dict[str, list[int]] = {}
    for e in cfg.runs:
        if e.mask or e.lr_from:
            continue
        row = e.row or e.method
        tasks.setdefault(row, []).extend(t for t in run_tasks(cfg, model, e) if t not in tasks[row])
        seeds.setdefault(row, [s for s in (e.seeds or cfg.seeds) if s != cfg.lr_seed])
    return tasks, seeds


def ladder(lr: float, up: bool) -> float:
    """The next lr on the 1-3-10 ladder (1e-3, 3e-3, 1e-2, ...): factors of 3 and 10/3 in turn; off the ladder, 3."""
    e = math.floor(math.log10(lr) + 1e-9)
    m = round(lr / 10**e, 6)
    if m not in (1.0, 3.0):
        return float(f"{lr * 3 if up else lr / 3:.6g}")
    if up:
        return float(f"3e{e}") if m == 1.0 else float(f"1e{e + 1}")
    return float(f"1e{e}") if m == 3.0 else float(f"3e{e - 1}")


def grown(picks: list[Run], best: Run, base: int, steps: int) -> float | None:
    """The lr to try next when `best` sits at an end of the grid `picks` tried (the first `base` of them the
    configured list, the rest grown), or None when it is inside, or the grid grew `steps` times that way."""
    lrs = sorted(r.lr for r in picks)
    listed = [r.lr for r in picks[:base]]
    if best.lr == lrs[-1] and sum(lr > max(listed) for lr in lrs) < steps:
        return ladder(best.lr, up=True)
    if best.lr == lrs[0] and sum(lr < min(listed) for lr in lrs) < steps:
        return ladder(best.lr, up=False)
    return None


def chosen_lr(picks: list[Run], done: dict[str, Record]) -> Run | None:
    """The lr_seed run whose lr the other seeds use (best validation score; ties: earlier in the lr list),
    or None while any of `picks` has no record."""
    if not picks or any(r.key not in done for r in picks):
        return None
    lower = not greater_is_better(picks[0].metric)
    worst = float("inf") if lower else float("-inf")

    def rank(r: Run) -> tuple:
        v = done[r.key].val_score
        v = worst if v is None or v != v else v
        return (v if lower else -v, r.lr_rank)

    return min(picks, key=rank)


def entry_lrs(cfg: SweepConfig, entry: RunEntry, task: str) -> list[float]:
    """The lrs an entry tries on `task`, in priority order."""
    te = cfg.task(task)
    own = entry.lrs.get(task) if isinstance(entry.lrs, dict) else entry.lrs
    return (own or te.lrs or lr_list(cfg, entry.method))[:entry.lr_budget or cfg.lr_budget]


def _source_entry(cfg: SweepConfig, entry: RunEntry) -> RunEntry:
    return next(e for e in cfg.runs if not e.lr_from and (e.row or e.method) == entry.lr_from)


def _train_runs(cfg: SweepConfig, model: ModelEntry, entry: RunEntry, task: str, data: dict,
                done: dict[str, Record], allowed: dict[str, int] | None = None) -> tuple[list[tuple[tuple, Run]], int]:
    if entry.lr_from:
        source, _ = _train_runs(cfg, model, _source_entry(cfg, entry), task, data, done)
        best = chosen_lr([r for _, r in source if r.picks_lr and r.spec.mask is None], done)
        if best is None:
            return [], len(entry.seeds or cfg.seeds)
        return _named(cfg, model, entry, task, data, [best.lr]), 0
    lrs = entry_lrs(cfg, entry, task)
    seeds = entry.seeds or cfg.seeds
    picker = cfg.lr_seed if cfg.lr_seed in seeds and len(seeds) > 1 else None
    if picker is None:
        return _named(cfg, model, entry, task, data, lrs), 0
    out, waiting = [], 0
    make = _maker(cfg, model, entry, task, data, out, picker)
    row = entry.row or entry.method
    reported = [s for s in seeds if s != picker]
    if allowed and row in allowed and not entry.mask:
        reported = reported[:allowed[row]]

    for mask in _masks(entry):
        picks = [make(mask, seeds.index(picker), picker, rank, lr) for rank, lr in enumerate(lrs)]
        best = chosen_lr(picks, done)
        while best is not None and cfg.lr_growth is not None:
            lr = grown(picks, best, len(lrs), cfg.lr_growth.steps)
            if lr is None:
                break
            picks.append(make(mask, seeds.index(picker), picker, len(picks), lr))
            best = chosen_lr(picks, done)
        for seed in reported:
            if best is None:
                waiting += 1
            else:
                make(mask, seeds.index(seed), seed, best.lr_rank, best.lr)
    return out, waiting


def _named(cfg: SweepConfig, model: ModelEntry, entry: RunEntry, task: str, data: dict,
           lrs: list[float]) -> list[tuple[tuple, Run]]:
    """Every seed at each of `lrs`, nothing chosen (a sweep without lr_seed, or an entry with lr_from)."""
    out: list[tuple[tuple, Run]] = []
    make = _maker(cfg, model, entry, task, data, out, None)
    seeds = entry.seeds or cfg.seeds
    for mask in _masks(entry):
        for si, seed in enumerate(seeds):
            for rank, lr in enumerate(lrs):
                make(mask, si, seed, rank, lr)
    return out


def _maker(cfg: SweepConfig, model: ModelEntry, entry: RunEntry, task: str, data: dict, out: list,
           picker: int | None):
    te = cfg.task(task)
    metric, task_kind = task_info(te)
    preset = _preset(model.name, entry.method) if entry.preset else None

    def make(mask, si: int, seed: int, rank: int, lr: float) -> Run:
        options = effective_options(entry.method, entry.options, seed, preset)
        train, machine = train_settings(cfg, te, entry, lr=lr, seed=seed,
                                        batch_size=_batch_size(cfg, model, te, entry, entry.method))
        m_seed = (entry.mask or {}).get("seed")
        spec = {
            "kind": "train", "task": task, "model": model.name, "method": entry.method, "options": options,
            "mask": mask and mask_spec(cfg, model, task, *mask, seed if m_seed is None else m_seed, data),
            "train": train, "train_limit": te.train_limit, "val_limit": te.val_limit,
            "eval_limit": te.eval_limit, "test_split": te.test_split,
            "generation": {"limit": te.generate, "num_beams": te.num_beams} if te.generate else None,
            "data": data[task],
        }
        if entry.curve:  # only curve runs carry it: every other key stays as it was
            spec["curve"] = entry.curve
        spec = RunSpec.model_validate(json.loads(canonical(spec)))  # JSON types: what a record will hold
        run = Run(spec.key(), spec, _row(entry, mask), entry.group, lr, rank, seed, metric, task_kind,
                  f"runs[{entry.index}]", machine, picks_lr=seed == picker)
        out.append(((rank, si, len(out)), run))
        return run

    return make


def _efficiency_runs(cfg: SweepConfig, model: ModelEntry, data: dict[str, str]) -> list[Run]:
    eff = cfg.efficiency
    if eff is None:
        return []
    task = model.efficiency_task or eff.task
    if task not in model_tasks(cfg, model):
        return []
    te = cfg.task(task)
    metric, task_kind = task_info(te)
    out = []
    # repeat-major order: every method is timed once before any is timed again
    for rep, entry in itertools.product(range(eff.repeats), cfg.runs):
        if entry.group not in eff.groups or entry.mask or task not in run_tasks(cfg, model, entry):
            continue
        preset = _preset(model.name, entry.method) if entry.preset else None
        options = effective_options(entry.method, entry.options, eff.seed, preset)
        lr = (entry.lrs or te.lrs or lr_list(cfg, entry.method))[0]
        timing = {"batch_size": eff.batch_size, "seq_len": eff.seq_len, "steps": eff.steps, "warmup": eff.warmup,
                  "threads": eff.threads or cfg.threads}
        if rep:  # repeat 0 keeps the key of a single timing run, so raising `repeats` only adds runs
            timing["repeat"] = rep
        train, machine = train_settings(cfg, te, entry, batch_size=eff.batch_size, max_length=eff.seq_len, lr=lr,
                                        seed=eff.seed)
        spec = {
            "kind": "efficiency", "task": task, "model": model.name, "method": entry.method, "options": options,
            "mask": None, "train": train,
            "train_limit": None, "val_limit": None, "eval_limit": None, "test_split": None, "generation": None,
            "data": data[task], "efficiency": timing,
        }
        spec = RunSpec.model_validate(json.loads(canonical(spec)))
        what = f"timing {rep + 1}/{eff.repeats}" if eff.repeats > 1 else "timing"
        out.append(Run(spec.key(), spec, entry.row or entry.method, "efficiency", lr, 0, eff.seed, metric,
                       task_kind, f"runs[{entry.index}] ({what})", machine))
    return out


def summary(runs: list[Run]) -> list[dict]:
    """Runs per (group, row, task), for --dry-run."""
    counts: dict[tuple, int] = {}
    for r in runs:
        k = (r.spec.model, r.group, r.row, r.spec.task)
        counts[k] = counts.get(k, 0) + 1
    return [{"model": m, "group": g, "row": row, "task": t, "runs": n} for (m, g, row, t), n in counts.items()]
