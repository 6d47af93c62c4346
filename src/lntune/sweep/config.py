"""Sweep configs: YAML -> dataclasses. Every error names the YAML file and the field at fault."""
from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from pathlib import Path

from lntune.errors import LntuneError
from lntune.report.sequential import Sequential  # noqa: F401 - the sweep's `sequential:` section, defined once
from lntune.spec.config_file import ConfigError, load_yaml, read_train_file  # noqa: F401 - read_train_file: also from here
from lntune.spec.config_file import Reader as _Reader
from lntune.spec.masks import MASK_KINDS

# Each TrainConfig field's sweep role is declared on the field (spec.train.option); these are derived.
from lntune.spec.train import GRID_OWNED, LATE_FIELDS, MACHINE_FIELDS, NOT_IN_SWEEPS, TrainConfig  # noqa: F401

# Paper 000 sec. 4.1: LN-tuning tries 1e-2, 1e-3, 2e-4 in this order, other methods 1e-3, 2e-4.
DEFAULT_LRS = {"ln": [1e-2, 1e-3, 2e-4], "other": [1e-3, 2e-4], "full": [1e-4, 5e-5, 2e-5]}


@dataclass
class TaskEntry:
    name: str
    train_limit: int | None  # seeded training subset (None: the whole split)
    val_limit: int | float | None  # validation slice held out of train: a count, or a share below 1
    eval_limit: int | None  # seeded subset of the reported split
    test_split: str  # the split reported as "test"
    train: dict = field(default_factory=dict)  # TrainConfig overrides for this task
    lrs: list[float] | None = None  # replaces the lr lists for every method on this task
    batch_sizes: dict[str, int] = field(default_factory=dict)  # method -> batch size on this task
    generate: int = 0  # generation tasks: metrics on N unique test inputs after training (-1 all)
    num_beams: int = 1
    metric: str | None = None  # main metric (default: the task's, or the first generation metric)


@dataclass
class RunEntry:
    index: int  # position under runs:, for messages
    method: str
    options: dict = field(default_factory=dict)  # the method's options; a composite's as {part: options}
    row: str | None = None  # table row label ({kind} and {fraction} fill in for masks)
    group: str = "main"  # which table it feeds
    mask: dict | None = None  # {kinds: [...], fractions: [...], seed} for Fisher/random LN masks
    lrs: list[float] | dict[str, list[float]] | None = None  # one list, or a list per task
    lr_budget: int | None = None
    lr_from: str | None = None  # run at the lr the sweep chose for this row on the same task (budget curves)
    curve: list[int] | None = None  # also score the reported split after these epochs (lntune.train.loop.Curve)
    tasks: list[str] | None = None  # subset of the sweep's tasks
    models: list[str] | None = None  # subset of the sweep's models
    seeds: list[int] | None = None
    preset: str | None = None  # paper: the papers' prefix length / adapter size for each model
    train: dict = field(default_factory=dict)  # TrainConfig overrides, batch_size included


@dataclass
class ModelEntry:
    name: str
    tasks: list[str] | None = None  # subset of the sweep's tasks this model runs
    batch_sizes: dict[str, dict[str, int]] = field(default_factory=dict)  # task -> {method | default: size}
    efficiency_task: str | None = None


@dataclass
class EfficiencyConfig:
    task: str  # one task per model, timed for every method
    groups: list[str] = field(default_factory=lambda: ["main"])  # run entries of these groups are timed
    batch_size: int = 32
    seq_len: int = 128  # every row padded to this many tokens
    steps: int = 10  # timed optimizer steps (and no-grad forwards); the median is kept
    warmup: int = 3  # untimed steps first
    seed: int = 1
    threads: int | None = None  # torch threads of a timing run (it runs alone; default: threads)
    repeats: int = 1  # timing runs per method, interleaved across methods so machine drift hits all alike


@dataclass
class FisherSettings:
    examples: int = 64  # training examples per task
    batch_size: int = 8
    max_length: int = 128
    seed: int = 42
    tasks: list[str] | None = None  # the pool for global/cv masks (default: every task of the model)


@dataclass(frozen=True)
class AnalysisPlan:
    """Decided before the sweep runs, written to RESULTS/design.json, read by the report."""

    margin: float = 1.5  # equivalence margin of the "about equal" claims (TOST), in display points
    majority_margin: float = 2.0  # a classification run failed: validation within this many points of the majority rate
    min_r: float = 0.2  # a correlation run failed: validation r below this
    level: float = 0.95  # confidence level of the intervals
    # family name -> contrast names (lntune.report.claims): Holm runs within each family; None: over all contrasts
    families: dict[str, list[str]] | None = None
    gate: float | None = None  # a row breaks the convergence gate on a task when more than this share of its
    #                            reported runs kept their last evaluation; its verdicts are withheld
    gate_rows: list[str] | None = None  # the rows the gate applies to (None: every row)


@dataclass(frozen=True)
class LrGrowth:
    """Grow an lr grid whose winner sits at an end by one step of the 1-3-10 ladder in that direction, then
    choose again, until the winner is inside (or `steps` growths in one direction were made)."""

    steps: int = 3


@dataclass
class SweepConfig:
    path: Path
    name: str
    models: list[ModelEntry]
    seeds: list[int]
    tasks: list[TaskEntry]
    runs: list[RunEntry]
    lrs: dict[str, list[float]]  # ln | other | full | a method name -> lrs in priority order
    lr_budget: int | None  # how many of each list to try (None: all)
    train: dict  # TrainConfig fields shared by every run
    batch_sizes: dict[str, int]  # method -> batch size
    efficiency: EfficiencyConfig | None
    fisher: FisherSettings
    workers: int = 1
    threads: int = 1  # torch threads per run
    devices: list[int] | None = None  # GPUs for local workers: each run sees one (CUDA_VISIBLE_DEVICES)
    data_dir: str | None = None
    results: str | None = None
    resources: dict = field(default_factory=dict)  # Ray: num_cpus / num_gpus per run
    lr_seed: int | None = None  # this seed tries each method's lr list; the others run at its best lr only
    analysis: AnalysisPlan | None = None  # None: no analysis: section, so no design.json and no claims
    lr_growth: LrGrowth | None = None  # with lr_seed: grids grow until their winner is inside
    sequential: Sequential | None = None  # with lr_seed: seeds added in blocks while CIs are too wide
    registered: dict = field(default_factory=dict)  # free-form design notes (stopping rule, head lr, ...) for design.json

    def task(self, name: str) -> TaskEntry:
        return next(t for t in self.tasks if t.name == name)


def train_fields() -> dict[str, Field]:
    """The TrainConfig fields a sweep's train: sections may set."""
    return {f.name: f for f in fields(TrainConfig) if f.name not in GRID_OWNED + NOT_IN_SWEEPS}


# The keys of each mapping in a sweep file are its dataclass's fields, less those the reader fills itself (and a
# task's or run's train: dict, whose keys sit inline beside the entry's own); lntune.sweep.schema lists the same.
_NOT_KEYS = {SweepConfig: {"path"}, TaskEntry: {"train"}, RunEntry: {"index", "train"}}
SHORTHANDS = {"model", "train_limit", "val_limit", "eval_limit"}  # top-level keys that fill other fields


def section_keys(cls) -> set[str]:
    """The YAML keys of the section that dataclass `cls` is read from."""
    return {f.name for f in fields(cls)} - _NOT_KEYS.get(cls, set())


TOP = section_keys(SweepConfig) | SHORTHANDS
TASK_KEYS = section_keys(TaskEntry)
RUN_KEYS = section_keys(RunEntry)


def load_config(path: str | Path) -> SweepConfig:
    """Read and check a sweep YAML; unknown keys are errors."""
    path = Path(path)
    return parse_config(load_yaml(path, str(path)), path)


def parse_config(raw, path: Path) -> SweepConfig:
    r = _Reader(path)
    r.mapping(raw, "", TOP, required=("name", "tasks", "runs"))
    if ("model" in raw) == ("models" in raw):
        raise r.error("model", "give exactly one of model: (a name) or models: (a list)")
    known = train_fields()
    train = r.train(r.mapping(raw.get("train", {}) or {}, "train", known), "train", known)
    tasks = _tasks(r, raw["tasks"], raw, known)
    names = [t.name for t in tasks]
    models = _models(r, raw.get("models", [raw.get("model")]), "models" if "models" in raw else "model", names)
    seeds = r.listed(raw.get("seeds", [1, 2, 3]), "seeds", lambda v, a: r.number(v, a, int))
    if not seeds or len(set(seeds)) != len(seeds):
        raise r.error("seeds", "give one or more distinct integer seeds")
    lrs = {k: list(v) for k, v in DEFAULT_LRS.items()}
    for k, v in r.mapping(raw.get("lrs", {}) or {}, "lrs", _lr_keys()).items():
        lrs[k] = r.lrs(v, f"lrs.{k}")
    runs = [_run(r, i, v, names, known, tasks, [m.name for m in models])
            for i, v in enumerate(_nonempty(r, raw["runs"], "runs"))]
    threads = r.number(raw.get("threads", 1), "threads", int, lo=1)
    cfg = SweepConfig(
        path=path,
        name=r.string(raw["name"], "name"),
        models=models,
        seeds=seeds,
        tasks=tasks,
        runs=runs,
        lrs=lrs,
        lr_budget=r.number(raw.get("lr_budget"), "lr_budget", int, lo=1, none=True),
        train=train,
        batch_sizes=_sizes(r, raw.get("batch_sizes", {}), "batch_sizes"),
        efficiency=None,
        fisher=_fisher(r, raw.get("fisher", {}) or {}, names),
        workers=r.number(raw.get("workers", len(raw.get("devices") or [1])), "workers", int, lo=1),
        devices=_devices(r, raw.get("devices")),
        threads=threads,
        data_dir=r.string(raw.get("data_dir"), "data_dir", none=True),
        results=r.string(raw.get("results"), "results", none=True),
        resources=_resources(r, raw.get("resources", {}) or {}, threads),
    )
    if raw.get("efficiency") is not None:
        cfg.efficiency = _efficiency(r, raw["efficiency"], names, seeds[0])
    _design(r, raw, cfg)
    _check_masks(r, cfg)
    _check_lr_from(r, cfg)
    return cfg


def _design(r: _Reader, raw: dict, cfg: SweepConfig) -> None:
    """The parts of the file that fix the analysis before the runs: the lr seed, the analysis plan, what is
    registered in prose, lr growth and the sequential seed rule."""
    seeds, runs = cfg.seeds, cfg.runs
    if raw.get("lr_seed") is not None:
        cfg.lr_seed = r.number(raw["lr_seed"], "lr_seed", int)
        if cfg.lr_seed not in seeds or len(seeds) < 2:
            raise r.error("lr_seed", f"{cfg.lr_seed} must be one of seeds ({seeds}), with at least one seed besides it")
    rows = {e.row or e.method for e in runs}
    cfg.analysis = _analysis(r, raw["analysis"] or {}, rows) if "analysis" in raw else None
    cfg.registered = r.mapping(raw.get("registered") or {}, "registered", _any())
    if raw.get("lr_growth") is not None:
        value = r.mapping(raw["lr_growth"], "lr_growth", section_keys(LrGrowth))
        cfg.lr_growth = LrGrowth(r.number(value.get("steps", 3), "lr_growth.steps", int, lo=1))
    if raw.get("sequential") is not None:
        cfg.sequential = _sequential(r, raw["sequential"], rows)
    if (cfg.lr_growth or cfg.sequential) and cfg.lr_seed is None:
        raise r.error("lr_growth" if cfg.lr_growth else "sequential", "needs lr_seed: the lr_seed's runs choose the lr")


def _sequential(r: _Reader, value, rows: set[str]) -> Sequential:
    value = r.mapping(value, "sequential", section_keys(Sequential), required=("contrasts",))
    pairs = []
    for i, pair in enumerate(_nonempty(r, value["contrasts"], "sequential.contrasts")):
        at = f"sequential.contrasts[{i}]"
        pair = r.listed(pair, at, r.string)
        if len(pair) != 2 or pair[0] == pair[1]:
            raise r.error(at, "give two different rows, [A, B]")
        for name in pair:
            if name not in rows:
                raise r.error(at, f"{name!r} is not a row of runs: ({', '.join(sorted(rows))})")
        pairs.append((pair[0], pair[1]))
    out = Sequential(pairs, **{k: r.number(value[k], f"sequential.{k}", int, lo=1)
                               for k in ("start", "block", "max") if k in value})
    got = {k: float(r.number(value[k], f"sequential.{k}", lo=0)) for k in ("half_width", "level") if k in value}
    out = Sequential(out.contrasts, out.start, out.block, out.max, **got)
    if out.max < out.start:
        raise r.error("sequential.max", f"{out.max} is below start ({out.start})")
    if not 0 < out.level < 1:
        raise r.error("sequential.level", "a confidence level between 0 and 1, e.g. 0.95")
    return out


def _check_lr_from(r: _Reader, cfg: SweepConfig) -> None:
    """lr_from names a row whose lr the lr_seed chooses on each of the entry's tasks."""
    rows = {e.row or e.method: e for e in cfg.runs if not e.lr_from}
    for e in cfg.runs:
        if not e.lr_from:
            continue
        at = f"runs[{e.index}].lr_from"
        if cfg.lr_seed is None:
            raise r.error(at, "needs lr_seed: the lr_seed's runs of that row choose the lr")
        if e.lr_from not in rows:
            raise r.error(at, f"{e.lr_from!r} is not the row of another entry ({', '.join(sorted(rows))})")
        if e.lrs is not None or e.mask:
            raise r.error(at, "an entry with lr_from takes that row's lr: drop lrs and mask")
        source = rows[e.lr_from]
        for m in cfg.models:
            missing = set(run_tasks(cfg, m, e)) - set(run_tasks(cfg, m, source))
            if missing:
                raise r.error(at, f"row {e.lr_from!r} does not run on {', '.join(sorted(missing))}")


def _analysis(r: _Reader, value, rows: set[str]) -> AnalysisPlan:
    value = r.mapping(value, "analysis", section_keys(AnalysisPlan))
    got = {k: float(r.number(v, f"analysis.{k}", lo=0)) for k, v in value.items()
           if k not in ("families", "gate_rows")}
    if not 0 < got.get("level", 0.95) < 1:
        raise r.error("analysis.level", "a confidence level between 0 and 1, e.g. 0.95")
    if "gate" in got and not 0 <= got["gate"] < 1:
        raise r.error("analysis.gate", "a share of runs in [0, 1), e.g. 0.2")
    if "families" in value:
        fams = r.mapping(value["families"], "analysis.families", _any())
        got["families"] = {r.string(k, "analysis.families"): r.listed(v, f"analysis.families.{k}", r.string)
                           for k, v in fams.items()}
        _check_families(r, got["families"])
    if "gate_rows" in value:
        got["gate_rows"] = r.listed(value["gate_rows"], "analysis.gate_rows", r.string)
        for name in got["gate_rows"]:
            if name not in rows:  # a misspelt row would leave its runs ungated, silently
                raise r.error("analysis.gate_rows", f"{name!r} is not a row of runs: ({', '.join(sorted(rows))})")
    return AnalysisPlan(**got)


def _check_families(r: _Reader, families: dict[str, list[str]]) -> None:
    """Every member is a registered contrast, in one family only. An unknown name would leave its contrast out
    of the family it was meant for: a contrast name holds commas, which a [a, b] list splits unless quoted."""
    from difflib import get_close_matches

    from lntune.report.claims import CONTRASTS  # lazy: the report's statistics load only for an analysis plan

    known, seen = [c.name for c in CONTRASTS], {}
    for family, names in families.items():
        at = f"analysis.families.{family}"
        for name in names:
            if name not in known:
                close = get_close_matches(name, known, n=3, cutoff=0.4)
                hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
                raise r.error(at, f"{name!r} is not a registered contrast (lntune.report.claims.CONTRASTS){hint} "
                              "A name with a comma must be quoted in a [a, b] list, or listed one per line")
            if name in seen:
                raise r.error(at, f"{name!r} is already in family {seen[name]!r}: a contrast belongs to one family")
            seen[name] = family


def _devices(r: _Reader, value) -> list[int] | None:
    if value is None:
        return None
    out = r.listed(value, "devices", lambda v, a: r.number(v, a, int, lo=0))
    if not out:
        raise r.error("devices", "list GPU indices, e.g. [0, 1], or leave devices out")
    return out


def _lr_keys() -> set[str]:
    from lntune.method import METHODS  # lazy: the YAML reader loads no torch until a method is looked up

    return set(DEFAULT_LRS) | set(METHODS)


def _nonempty(r: _Reader, value, at: str) -> list:
    if not isinstance(value, list) or not value:
        raise r.error(at, "expected a non-empty list")
    return value


def _sizes(r: _Reader, value, at: str) -> dict[str, int]:
    from lntune.method import METHODS  # lazy: the YAML reader loads no torch until a method is looked up

    value = r.mapping(value or {}, at, set(METHODS) | {"default"} | _composites(value))
    return {k: r.number(v, f"{at}.{k}", int, lo=1) for k, v in value.items()}


def _composites(value) -> set[str]:
    from lntune.method import METHODS  # lazy: the YAML reader loads no torch until a method is looked up

    if not isinstance(value, dict):
        return set()
    return {k for k in value if isinstance(k, str) and "+" in k and all(p in METHODS for p in k.split("+"))}


def _tasks(r: _Reader, value, raw: dict, known: dict) -> list[TaskEntry]:
    from lntune.data import get_task  # lazy: the YAML reader loads no torch until a task is looked up

    out = []
    for i, item in enumerate(_nonempty(r, value, "tasks")):
        at = f"tasks[{i}]"
        item = {"name": item} if isinstance(item, str) else item
        item = r.mapping(item, at, TASK_KEYS | set(known), required=("name",))
        name = r.string(item["name"], f"{at}.name")
        try:
            t = get_task(name)
        except LntuneError as e:
            raise r.error(f"{at}.name", str(e)) from None
        if name in [o.name for o in out]:
            raise r.error(f"{at}.name", f"task {name} is listed twice; merge the entries")
        split = item.get("test_split", "test" if "test" in t.splits else "dev")
        if split not in t.splits or split == "train":
            raise r.error(f"{at}.test_split", f"{split!r}: task {name} has {', '.join(t.splits)}; report dev or test")
        generate = r.number(item.get("generate", 0), f"{at}.generate", int, lo=-1)
        if generate and not t.gen_metrics:
            raise r.error(f"{at}.generate", f"task {name} does not generate text; drop generate")
        limits = {}
        for k in ("train_limit", "val_limit", "eval_limit"):
            v = item.get(k, raw.get(k))
            where = f"{at}.{k}" if k in item else k
            limits[k] = r.number(v, where, int, lo=0 if k != "val_limit" else 1, none=True, below_one=(k == "val_limit"))
            if limits[k] == 0:  # 0 is the whole split, as on the command line and in the Python API
                limits[k] = None
        out.append(TaskEntry(
            name=name, **limits, test_split=split,
            train=r.train(item, at, known),
            lrs=r.lrs(item["lrs"], f"{at}.lrs") if "lrs" in item else None,
            batch_sizes=_sizes(r, item.get("batch_sizes"), f"{at}.batch_sizes"),
            generate=generate,
            num_beams=r.number(item.get("num_beams", 1), f"{at}.num_beams", int, lo=1),
            metric=r.string(item.get("metric"), f"{at}.metric", none=True),
        ))
    return out


def _models(r: _Reader, value, at: str, task_names: list[str]) -> list[ModelEntry]:
    out = []
    for i, item in enumerate(value if isinstance(value, list) and value else [value]):
        where = f"{at}[{i}]" if at == "models" else at
        item = {"name": item} if isinstance(item, str) else item
        if item is None:
            raise r.error(where, "expected a model: an alias (minilm), a local path or a Hugging Face id")
        item = r.mapping(item, where, section_keys(ModelEntry), required=("name",))
        sizes = {}
        for task, per in r.mapping(item.get("batch_sizes", {}) or {}, f"{where}.batch_sizes", set(task_names)).items():
            sizes[task] = _sizes(r, per, f"{where}.batch_sizes.{task}")
        out.append(ModelEntry(
            name=r.string(item["name"], f"{where}.name"),
            tasks=_subset(r, item.get("tasks"), f"{where}.tasks", task_names),
            batch_sizes=sizes,
            efficiency_task=_subset(r, item.get("efficiency_task"), f"{where}.efficiency_task", task_names, one=True),
        ))
    if len({m.name for m in out}) != len(out):
        raise r.error(at, "a model is listed twice")
    return out


def _subset(r: _Reader, value, at: str, names: list[str], one: bool = False,
            unknown: str = "task {!r} is not under tasks: (have {})"):
    if value is None:
        return None
    items = r.listed(value, at, r.string)
    bad = [t for t in items if t not in names]
    if bad:
        raise r.error(at, unknown.format(bad[0], ", ".join(names)))
    if one and len(items) != 1:
        raise r.error(at, "name one task")
    return items[0] if one else items


def _run(r: _Reader, i: int, item, task_names: list[str], known: dict, tasks: list[TaskEntry],
         model_names: list[str]) -> RunEntry:
    from lntune.method import build_method  # lazy: the YAML reader loads no torch until a method is built

    at = f"runs[{i}]"
    item = r.mapping(item, at, RUN_KEYS | set(known), required=("method",))
    method = r.string(item["method"], f"{at}.method")
    options = r.mapping(item.get("options", {}) or {}, f"{at}.options", _any())
    try:
        build_method(method, **options)  # unknown methods, parts and option names fail here, not in a worker
    except LntuneError as e:
        raise r.error(f"{at}.options" if "options" in item else f"{at}.method", str(e)) from None
    except (TypeError, ValueError) as e:
        raise r.error(f"{at}.options", f"{e}") from None
    entry = RunEntry(
        index=i, method=method, options=options,
        row=r.string(item.get("row"), f"{at}.row", none=True),
        group=r.string(item.get("group", "fraction" if item.get("mask") else "main"), f"{at}.group"),
        mask=_mask(r, item["mask"], f"{at}.mask", method) if item.get("mask") is not None else None,
        lrs=_entry_lrs(r, item["lrs"], f"{at}.lrs", task_names) if "lrs" in item else None,
        lr_budget=r.number(item.get("lr_budget"), f"{at}.lr_budget", int, lo=1, none=True),
        lr_from=r.string(item.get("lr_from"), f"{at}.lr_from", none=True),
        curve=_curve(r, item.get("curve"), f"{at}.curve"),
        tasks=_subset(r, item.get("tasks"), f"{at}.tasks", task_names),
        models=_subset(r, item.get("models"), f"{at}.models", model_names,
                       unknown="model {!r} is not one of the sweep's models ({})"),
        seeds=r.listed(item["seeds"], f"{at}.seeds", lambda v, a: r.number(v, a, int)) if "seeds" in item else None,
        preset=r.string(item.get("preset"), f"{at}.preset", none=True),
        train=r.train(item, at, known),
    )
    if entry.preset not in (None, "paper"):
        raise r.error(f"{at}.preset", f"{entry.preset!r}: the only preset is paper")
    _check_heads(r, entry, at, [t for t in tasks if entry.tasks is None or t.name in entry.tasks])
    return entry


def _entry_lrs(r: _Reader, value, at: str, task_names: list[str]) -> list[float] | dict[str, list[float]]:
    if not isinstance(value, dict):
        return r.lrs(value, at)
    value = r.mapping(value, at, set(task_names))
    return {task: r.lrs(v, f"{at}.{task}") for task, v in value.items()}


def _curve(r: _Reader, value, at: str) -> list[int] | None:
    if value is None:
        return None
    epochs = r.listed(value, at, lambda v, a: r.number(v, a, int, lo=1))
    if not epochs or epochs != sorted(set(epochs)):
        raise r.error(at, "list epochs (1-based) in increasing order, e.g. [1, 2, 4, 8, 16]")
    return epochs


def _any():
    class _All:
        def __contains__(self, _):
            return True

    return _All()


def _check_heads(r: _Reader, entry: RunEntry, at: str, tasks: list[TaskEntry]) -> None:
    """A method that tunes some heads only (Method.heads, e.g. 3V's sentence classifiers): say so here rather
    than fail every run of it."""
    from lntune.data import get_task  # lazy: the YAML reader loads no torch until a task is looked up
    from lntune.method import parts  # lazy: as above

    for m in parts(entry.method):
        if m.heads is None:
            continue
        bad = [t.name for t in tasks if get_task(t.name).head not in m.heads]
        if bad:
            raise r.error(f"{at}.tasks", f"{m.name} cannot run on {', '.join(bad)} (heads other than "
                          f"{' or '.join(m.heads)}); list the tasks it runs on under tasks:")


def _mask(r: _Reader, value, at: str, method: str) -> dict:
    from lntune.method import METHODS  # lazy: the YAML reader loads no torch until a method is looked up

    takers = [name for name, m in METHODS.items() if "mask" in m.Config.__dataclass_fields__]  # a `mask` option
    if method not in takers:
        raise r.error(at, f"masks select LN elements: use method: {' or '.join(takers)}, not {method}")
    value = r.mapping(value, at, {"kind", "fraction", "seed"}, required=("kind", "fraction"))
    kinds = r.listed(value["kind"], f"{at}.kind", r.string)
    for j, k in enumerate(kinds):
        if k not in MASK_KINDS:
            raise r.error(f"{at}.kind[{j}]", f"{k!r}: choose from {', '.join(MASK_KINDS)}")
    fractions = r.listed(value["fraction"], f"{at}.fraction", lambda v, a: float(r.number(v, a)))
    for j, f in enumerate(fractions):
        if not 0 < f <= 1:
            raise r.error(f"{at}.fraction[{j}]", f"{f}: a share of the LN elements in (0, 1]")
    seed = r.number(value.get("seed"), f"{at}.seed", int, none=True)
    return {"kinds": kinds, "fractions": fractions, "seed": seed}


def _fisher(r: _Reader, value, names: list[str]) -> FisherSettings:
    value = r.mapping(value, "fisher", section_keys(FisherSettings))
    out = FisherSettings()
    for k in ("examples", "batch_size", "max_length", "seed"):
        if k in value:
            setattr(out, k, r.number(value[k], f"fisher.{k}", int, lo=0 if k == "seed" else 1))
    out.tasks = _subset(r, value.get("tasks"), "fisher.tasks", names)
    return out


def _efficiency(r: _Reader, value, names: list[str], seed: int) -> EfficiencyConfig:
    value = r.mapping(value, "efficiency", section_keys(EfficiencyConfig))
    out = EfficiencyConfig(task=_subset(r, value.get("task", names[0]), "efficiency.task", names, one=True), seed=seed)
    for k in ("batch_size", "seq_len", "steps", "warmup", "seed", "threads", "repeats"):
        if k in value:
            setattr(out, k, r.number(value[k], f"efficiency.{k}", int, lo=0 if k in ("warmup", "seed") else 1))
    if "groups" in value:
        out.groups = r.listed(value["groups"], "efficiency.groups", r.string)
    return out


def _resources(r: _Reader, value, threads: int) -> dict:
    value = r.mapping(value, "resources", {"num_cpus", "num_gpus"})
    return {
        "num_cpus": r.number(value.get("num_cpus", threads), "resources.num_cpus", float, lo=0),
        "num_gpus": r.number(value.get("num_gpus", 0), "resources.num_gpus", float, lo=0),
    }


def _check_masks(r: _Reader, cfg: SweepConfig) -> None:
    """cv masks leave the target task out of the pool: at least one other task must be in it."""
    for e in cfg.runs:
        if not e.mask:
            continue
        for m in cfg.models:
            pool = fisher_pool(cfg, m)
            for t in run_tasks(cfg, m, e):
                if "cv" in e.mask["kinds"] and not set(pool) - {t}:
                    raise r.error(f"runs[{e.index}].mask.kind", f"a cv mask for {t} needs the Fisher of another task; "
                                  "add tasks to fisher.tasks")
                if set(e.mask["kinds"]) & {"individual", "cv"} and t not in pool:
                    raise r.error(f"runs[{e.index}].tasks", f"task {t} is not in fisher.tasks ({', '.join(pool)})")


def model_tasks(cfg: SweepConfig, model: ModelEntry) -> list[str]:
    return [t.name for t in cfg.tasks if model.tasks is None or t.name in model.tasks]


def run_tasks(cfg: SweepConfig, model: ModelEntry, entry: RunEntry) -> list[str]:
    if entry.models is not None and model.name not in entry.models:
        return []
    return [t for t in model_tasks(cfg, model) if entry.tasks is None or t in entry.tasks]


def fisher_pool(cfg: SweepConfig, model: ModelEntry) -> list[str]:
    """The tasks whose Fisher global and cv masks sum over, for this model."""
    mine = model_tasks(cfg, model)
    return [t for t in (cfg.fisher.tasks or mine) if t in mine]
