"""The pipeline in one place: data -> model -> method -> train -> evaluate -> skin."""
from __future__ import annotations

import json
import random
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lntune.data import Task, get_task, resolve_data_dir, subset
from lntune.data.rows import KIND as ROWS_KIND
from lntune.data.rows import RowsTask, is_rows
from lntune.durable import next_dir, remove_stale, replace_folder
from lntune.errors import DiskError, LntuneError, MethodError
from lntune.evaluate import evaluate
from lntune.heads import encode, get_head
from lntune.method import build_method, prepare
from lntune.method.options import for_build, merge, paper_preset
from lntune.method.tuning import Tuning
from lntune.model import load_model
from lntune.skin import EVAL_NEEDS, load_skin, save_skin, skin_task, write_atomic
from lntune.skin_schema import SkinRecord
from lntune.skin_card import invocation
from lntune.spec.files import CHECKPOINT_DIR, SKIN_JSON
from lntune.spec.metrics import greater_is_better
from lntune.spec.results import DataInfo, RunRecord, RunResult, TaskInfo
from lntune.train import TrainConfig, train
from lntune.train.checkpoint import Checkpointer
from lntune.train.log import check_tracker
from lntune.train.loop import Curve, Score, eval_loader, make_accelerator
from lntune.train.seed import seed_everything
from lntune.train.step import is_main_process
from lntune.train.validate import check_run
from lntune.evaluate.generate import generation_metrics

if TYPE_CHECKING:
    import torch


def describe_counts(method: str, model_id: str, c: dict) -> str:
    return (
        f"{method} on {model_id}: {c['tuned']:,} tuned parameters = {c['tuned_pct']:.4f}% of "
        f"{c['base']:,} (#Para., head excluded); with the {c['head']:,}-parameter head {c['tuned_with_head_pct']:.4f}%"
    )


def with_preset(method: str, options: dict, preset: str | None, lm) -> dict:
    if preset is None:
        return options
    if preset != "paper":
        raise MethodError(f"--preset {preset!r}: the only preset is 'paper'")
    nested = options if "+" in method else {method: options}
    return for_build(method, merge(paper_preset(method, lm.model.config), nested))


def load_split(task: str | Task, split: str, data_dir, limit: int | None, seed: int) -> list[dict]:
    """A seeded subset of a task's split; give the Task itself where it is at hand (a local: task's spec is
    read again at every get_task)."""
    t = get_task(task) if isinstance(task, str) else task
    return subset(t.load(split, resolve_data_dir(data_dir)), limit, seed)


DEFAULT_OUT = "runs/{task}-{method}"  # where a run saves its skin unless told: the CLI's and the API's default


def default_out(task: str, method: str, overwrite: bool = False) -> Path:
    """runs/TASK-METHOD, or the first of runs/TASK-METHOD-2, -3, ... that does not exist yet: each run without an
    --out gets its own folder, whatever its other options; `overwrite` replaces runs/TASK-METHOD itself."""
    base = out = Path(DEFAULT_OUT.format(task=_folder_name(task), method=method))
    n = 1
    while out.exists() and not overwrite:
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def _folder_name(task: str) -> str:
    """The task's name, or for a users' spec its kind and training file (local:train=my/x.csv,... -> local-my-x;
    conll:data/ner -> conll-data-ner): a spec's slashes would nest folders, and its commas and colons are no name."""
    kind, sep, spec = task.partition(":")
    if not sep:
        return task
    fields = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
    path = Path(fields.get("train", spec.split(",")[0]))
    name = "-".join(p for p in (kind, path.parent.name, path.stem) if p and p not in (".", ".."))
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or kind


VAL_SEED = 0  # the validation slice is the same for every run's seed, so lrs and seeds are judged on the same rows
CARVED_SHARE = 0.1  # of a training file given without a dev file, held out for early stopping (issue 25 #9)


def carve_validation(
    task: str | Task, data_dir, val_limit: int | float, train_limit: int | None, seed: int,
    by_class: bool = False,
) -> tuple[list[dict], list[dict]]:
    """(train, validation): a fixed seeded slice of the training split held out for early stopping and
    lr choice (`val_limit` examples, or that share of the split when below 1), then a `seed`ed subset
    of the rest for training. `by_class` (a file given without dev) draws the share from each class, so a
    small file's slice holds every class it can; sweeps keep the plain draw their records were made with."""
    t = get_task(task) if isinstance(task, str) else task
    rows = t.load("train", resolve_data_dir(data_dir))
    n = max(1, round(val_limit * len(rows))) if isinstance(val_limit, float) and val_limit < 1 else int(val_limit)
    if not 0 < n < len(rows):
        raise LntuneError(
            f"val_limit {val_limit}: task {t.name} has {len(rows)} training examples; "
            "hold out between 1 and all but one of them (a count, or a share below 1)"
        )
    held = _by_class(rows, n) if by_class else set(random.Random(VAL_SEED).sample(range(len(rows)), n))
    train_rows = [r for i, r in enumerate(rows) if i not in held]
    return subset(train_rows, train_limit, seed), [r for i, r in enumerate(rows) if i in held]


def _by_class(rows: list[dict], n: int) -> set[int]:
    """`n` row indices drawn class by class in proportion (seeded by VAL_SEED), at least one from each class that
    has two rows or more; rows without a class label (regression, generation) are one group."""
    groups: dict = {}
    for i, r in enumerate(rows):
        label = r.get("label")
        groups.setdefault(label if isinstance(label, int) else None, []).append(i)
    rng, held = random.Random(VAL_SEED), set()
    for key in sorted(groups, key=lambda k: (k is None, k if k is not None else 0)):
        members = groups[key]
        take = min(len(members) - 1, max(1, round(n * len(members) / len(rows)))) if len(members) > 1 else 0
        held.update(rng.sample(members, take))
    return held


def train_task(
    task: str | Any = "sst2",
    model: str = "minilm",
    method: str = "ln",
    options: dict | None = None,
    config: TrainConfig | None = None,
    out: str | Path | None = DEFAULT_OUT,
    data_dir: str | Path | None = None,
    train_limit: int | None = 3000,
    eval_limit: int | None = None,
    dtype: str = "float32",
    norm_map: dict | None = None,
    preset: str | None = None,
    generate: int = 0,
    num_beams: int = 1,
    val_limit: int | float | None = None,
    test_split: str = "dev",
    overwrite: bool = False,
    checkpoint: bool = True,
    resume: bool = False,
    curve_epochs: tuple[int, ...] = (),
    on_trained: Callable[[Tuning, dict[str, torch.Tensor]], None] | None = None,
    columns: dict[str, str] | None = None,
    dev: Any = None,
) -> RunResult:
    """Train `method` on `task`, save the skin and metrics.json under `out`; returns the run's RunResult.

    >>> from lntune import TrainConfig, train_task
    >>> rec = train_task("sst2", "minilm", "ln", config=TrainConfig(epochs=1), out="runs/sst2-ln")  # doctest: +SKIP
    >>> rec.metrics["accuracy"], rec.counts.tuned  # doctest: +SKIP
    (0.8..., 9984)

    `options` are the method's (for a composite like "prefix+ln": {part: options});
    `preset="paper"` fills in the papers' prefix length / adapter size for this model first.
    `generate=N` (generation tasks) scores the best state's generations on N unique dev inputs
    (-1: all) once training ends; checkpoints are still chosen by the cheap dev loss.
    `val_limit` (sweeps) holds a fixed seeded validation slice out of train for early stopping, and the
    kept state is scored on `test_split` (`eval_limit` of it) as "test"; with None, early stopping uses
    dev as before (and "test" is only scored for a test_split other than dev).
    `out` defaults to runs/TASK-METHOD, as on the command line; `out=None` saves no skin (and no checkpoint);
    a skin already at `out` is refused, before training, unless `overwrite`.
    `checkpoint` writes out/checkpoint/ at each evaluation (removed once the skin is saved); `resume`
    continues from it, given the same arguments (lntune.train.checkpoint.run_args(out) reads them back).
    `curve_epochs` (with `val_limit`) also scores the `test_split` after each listed epoch, into "curve".
    `on_trained(tuning, base)` sees the trained model (its kept state) and the base parameters as loaded, before
    anything is saved: a sweep measures the change in memory instead of writing a skin to diff.
    `task` may also be rows in memory (a list of dicts, a pandas DataFrame, a datasets Dataset or DatasetDict),
    read with `columns` as a local: spec names them ({"text": "A" or "A+B", "label": ..., "head": "regression"});
    `dev` rows are optional (without them a slice of the training rows is held out, as for a local: file).
    """
    rows = _rows(task, columns, dev)
    task = task if rows is None else rows.name  # what the checkpoint, the command line and the skin record
    if out is DEFAULT_OUT:
        out = default_out(ROWS_KIND if rows is not None else task, method, overwrite)
    checkpoint = checkpoint and out is not None  # nowhere to write one
    run = {k: v for k, v in locals().items() if k not in ("checkpoint", "resume", "on_trained", "columns", "dev",
                                                          "rows")}
    config = config or TrainConfig()
    run["config"] = asdict(config)
    saver, work = _start(run, config, out, resume, checkpoint, overwrite)
    t = rows or get_task(task)
    s = _splits(t, data_dir, config, train_limit, eval_limit, val_limit, test_split, generate, curve_epochs)
    tuning, base = _build(t, model, method, options, preset, dtype, norm_map, config, keep_base=on_trained is not None)
    feats = partial(encode, tokenizer=tuning.lm.tokenizer, head=t.head, max_length=config.max_length)
    curve = Curve(feats(s.test), frozenset(curve_epochs)) if curve_epochs else None
    result = train(tuning, feats(s.train), feats(s.dev), config, t.labels, checkpoint=saver, log_dir=work,
                   score=Score(t.metric, greater_is_better(t.metric)), curve=curve)
    record = RunRecord(
        command=invocation(f"lntune.train_task({task!r}, {model!r}, {method!r}, options={options!r}, "
                           f"config=TrainConfig(**{asdict(config)!r}))"),
        task=TaskInfo(name=t.name, head=t.head, labels=list(t.labels), metric=t.metric),
        data=DataInfo(**_data(t, s, train_limit, eval_limit)), train=asdict(config), metrics=result.best,
        steps=result.steps, train_seconds=result.seconds, best_seconds=result.best_seconds,
        **_held_out(tuning, t, s, feats, config, result.curve if curve else None, data_dir, generate, num_beams))
    if on_trained is not None:
        on_trained(tuning, base)
    if out is not None and is_main_process():  # under accelerate launch, one process writes
        _save(work, tuning, record, result, saver)
        if work != out:  # the new skin is whole: it takes the old one's place in one step
            replace_folder(work, out)
    return RunResult(**record.skin_json(), counts=tuning.counts(), out=None if out is None else str(out))


def _rows(task, columns: dict | None, dev) -> RowsTask | None:
    """The task as rows given in Python, or None for a task name; bad rows fail before anything starts."""
    if is_rows(task):
        return RowsTask.build(task, columns, dev)
    if columns is not None or dev is not None:
        raise LntuneError(f"columns= and dev= go with rows given in Python; task {task!r} is a name "
                          "(for files, write the columns into a local: spec)")
    return None


@dataclass(frozen=True)
class _Splits:
    """The examples a run reads, and how its validation rows were chosen."""

    train: list[dict]
    dev: list[dict]  # early stopping and the kept state: dev, or a validation slice of train
    test: list[dict]  # the held-out split the kept state is scored on (empty unless `scored`)
    val_limit: int | float | None  # the validation slice's size (a share when carved)
    carved: bool  # a task without a dev file: the slice was carved out of train, class by class
    scored: bool  # the kept state is also scored on test_split (a sweep's val_limit, or a split other than dev)
    test_split: str


def _splits(t: Task, data_dir, config: TrainConfig, train_limit, eval_limit, val_limit, test_split: str,
            generate: int, curve_epochs: tuple[int, ...]) -> _Splits:
    """Every example the run reads, checked against what it asks for before a model loads."""
    if generate and not t.gen_metrics:
        raise LntuneError(f"--generate: task {t.name} does not generate text (use e2e, webnlg, dart or samsum)")
    scored = val_limit is not None or test_split != "dev"  # the kept state is also scored on test_split
    if curve_epochs and not scored:
        raise LntuneError("curve_epochs scores a held-out split: give val_limit (or a test_split other than dev)")
    carved = val_limit is None and "dev" not in t.splits  # one file: early stopping reads a slice of it
    if carved:
        val_limit = CARVED_SHARE
    train_ex, dev_ex = _examples(t, data_dir, config.seed, train_limit, eval_limit, val_limit, carved)
    if carved and config.progress and is_main_process():
        print(f"{t.name}: no dev file, so {len(dev_ex)} of the training file's {len(dev_ex) + len(train_ex)} rows "
              f"(a seeded {CARVED_SHARE:.0%}) are held out as the validation slice for early stopping; its score "
              "also chose the kept state, so add dev=PATH for an unbiased one", file=sys.stderr)
    test_ex = load_split(t, test_split, data_dir, eval_limit, VAL_SEED) if scored else []  # same rows every seed
    return _Splits(train_ex, dev_ex, test_ex, val_limit, carved, scored, test_split)


def _build(t: Task, model: str, method: str, options: dict | None, preset: str | None, dtype: str,
           norm_map: dict | None, config: TrainConfig, keep_base: bool) -> tuple[Tuning, dict | None]:
    """(the model with the method applied, a copy of its base parameters as loaded when `keep_base`)."""
    lm = load_model(model, t.head, max(len(t.labels), 1), dtype, norm_map, seed=config.seed)
    base = {n: p.detach().clone() for n, p in lm.base_parameters()} if keep_base else None
    seed_everything(config.seed)  # modules a method adds (adapters, LoRA, prefix) draw from the global generators
    tuning = prepare(lm, build_method(method, **with_preset(method, options or {}, preset, lm)))
    if config.progress and is_main_process():
        print(describe_counts(method, model, tuning.counts()), file=sys.stderr)
        if t.labels:
            print(f"labels of {t.name}: {', '.join(t.labels)}", file=sys.stderr)
    return tuning, base


def _held_out(tuning: Tuning, t: Task, s: _Splits, feats, config: TrainConfig, curve: list[dict] | None, data_dir,
              generate: int, num_beams: int) -> dict:
    """What only some runs have: the kept state's scores on the held-out split, its curve, its generations."""
    out = {}
    if s.scored:
        out["test"] = _score(tuning.lm, t, feats(s.test), config.eval_batch_size, config.mixed_precision)
    if curve is not None:
        out["curve"] = curve
    if generate:
        out["generation"] = _generation(tuning.lm, t, data_dir, generate, config.seed, num_beams,
                                        config.eval_batch_size, split=s.test_split, rows=s.dev if s.carved else None)
    return out


def _start(run: dict, config: TrainConfig, out, resume: bool, checkpoint: bool,
           overwrite: bool) -> tuple[Checkpointer | None, Path | None]:
    """Every check a run can fail before it loads anything, then (its checkpointer or None, the folder it works
    in). A run that replaces a finished skin works beside it (durable.next_dir), so the old skin stays whole and
    loadable until the new one is, and `--resume OUT` finds the interrupted replacement there."""
    work = out
    if out is not None and (overwrite or resume) and (Path(out) / SKIN_JSON).is_file():
        work = next_dir(Path(out))
        if not resume and is_main_process():
            shutil.rmtree(work, ignore_errors=True)  # a replacement started over, or an old skin a crash left
    saver = Checkpointer.start(work, run, resume=True) if resume else None  # a finished run or another run: say so first
    check_run(run["model"], config, run["dtype"], run["norm_map"], out, overwrite, train_limit=run["train_limit"],
              eval_limit=run["eval_limit"], generate=run["generate"], num_beams=run["num_beams"])
    check_tracker(config.report_to)  # before the model loads, not 15 s into the run
    if work is not None:  # a run killed while saving left temp files: they go before this one writes
        for folder in (Path(work), Path(work) / CHECKPOINT_DIR):
            remove_stale(folder)
    if checkpoint and saver is None:
        saver = Checkpointer.start(work, run, overwrite=overwrite)
    return saver, work


def _examples(t: Task, data_dir, seed: int, train_limit, eval_limit, val_limit,
              carved: bool = False) -> tuple[list[dict], list[dict]]:
    """(training examples, examples for early stopping: dev, or a validation slice carved out of train)."""
    if val_limit is None:
        return load_split(t, "train", data_dir, train_limit, seed), load_split(t, "dev", data_dir, eval_limit, seed)
    return carve_validation(t, data_dir, val_limit, train_limit, seed, by_class=carved)


def _data(t: Task, s: _Splits, train_limit, eval_limit) -> dict:
    """The data a run read (DataInfo's fields)."""
    data = {"train_limit": train_limit, "eval_limit": eval_limit, "train_size": len(s.train), "dev_size": len(s.dev)}
    head = get_head(t.head)
    majority = head.majority(s.dev)
    if majority is not None:
        data["majority"] = {"dev": majority}  # what always guessing one class scores
    if s.carved:
        data.update(val_limit=s.val_limit, carved=True)
    if s.scored:
        data.update(val_limit=s.val_limit, test_split=s.test_split, test_size=len(s.test))  # dev_size: val
        if "majority" in data:
            data["majority"]["test"] = head.majority(s.test)
    return data


def _save(out, tuning: Tuning, record: RunRecord, result, saver: Checkpointer | None) -> None:
    """The skin, then metrics.json beside it; a finished run is its skin, so its checkpoint goes. A refused write
    says what was saved, what was not, and how to go on."""
    try:
        save_skin(out, tuning, record.skin_json())
    except DiskError as e:
        how = (f"its last checkpoint stands: free space, then lntune train --resume {saver.dir.parent} continues"
               if saver is not None and saver.saves else "free space and train again")
        raise LntuneError(f"{e}: the skin was not saved; {how}") from None
    history = {"best": result.best, "history": result.history}
    if record.generation is not None:
        history["generation"] = record.generation.model_dump()
    try:
        write_atomic(Path(out) / "metrics.json", json.dumps(history, indent=2).encode())
    except DiskError as e:
        raise LntuneError(f"the skin at {out} is saved and whole, but {e}: metrics.json (the evaluation history; "
                          "metrics.jsonl has it line by line) was not written") from None
    if saver is not None:
        saver.finish()


def _score(lm, t, feats: list[dict], batch_size: int, mixed_precision: str) -> dict:
    """Metrics of the model as it is on encoded examples, with the autocast training used."""
    loader = eval_loader(feats, batch_size, lm.tokenizer.pad_token_id)
    acc = make_accelerator(mixed_precision)
    model, loader = acc.prepare(lm.model, loader)
    return evaluate(model, loader, t.head, acc, t.labels)


def evaluate_skin(skin: str | Path, data_dir: str | Path | None = None, model: str | None = None,
                  task: str | None = None) -> dict:
    """Rebuild the skin on its base and evaluate on the dev split it was trained with (or `task`'s).

    >>> from lntune import evaluate_skin
    >>> evaluate_skin("runs/sst2-ln")["accuracy"]  # doctest: +SKIP
    0.8...
    """
    return _evaluate(_for_eval(skin, model), skin, data_dir, task)


def evaluate_and_generate(skin: str | Path, data_dir: str | Path | None = None, model: str | None = None,
                          task: str | None = None, generate: int | None = None, num_beams: int | None = None,
                          predictions: str | Path | None = None) -> tuple[dict, dict | None, SkinRecord]:
    """(evaluate_skin's metrics, generate_skin's result or None, skin.json's record), reading the skin and
    loading its base once. Generation runs when `generate` asks for it, or (None) when the skin saved some."""
    loaded = _for_eval(skin, model)
    metrics = _evaluate(loaded, skin, data_dir, task)
    meta = loaded[1]
    if not generate and (generate is not None or meta.generation is None):
        return metrics, None, meta
    return metrics, _generate(loaded, skin, data_dir, generate, num_beams, predictions, task), meta


def _evaluate(loaded: tuple, skin: str | Path, data_dir, task: str | None) -> dict:
    tuning, meta, cfg, data = loaded
    with skin_task(skin, meta, task) as t:  # errors about files the skin names do not quote them
        dev_ex = _carved(t, data_dir, meta, cfg) if task is None else None
        if dev_ex is None:
            dev_ex = subset(t.load("dev", resolve_data_dir(data_dir)), data["eval_limit"], cfg["seed"])
    feats = encode(dev_ex, tuning.lm.tokenizer, t.head, cfg["max_length"])
    metrics = _score(tuning.lm, t, feats, cfg["eval_batch_size"], cfg["mixed_precision"])
    # accelerate's prepare wrapped forward in autocast in place: generation after it runs on the model as
    # loaded, as it did when it loaded a model of its own
    from accelerate.utils import extract_model_from_parallel

    extract_model_from_parallel(tuning.lm.model, keep_fp32_wrapper=False)
    return metrics


def _carved(t: Task, data_dir, meta: SkinRecord, cfg: dict) -> list[dict] | None:
    """The validation slice a skin trained without a dev file was stopped on (the same rows: VAL_SEED), else None."""
    if meta.data is None or not meta.data.carved:
        return None
    return carve_validation(t, data_dir, meta.data.val_limit, None, cfg["seed"], by_class=True)[1]


def _for_eval(skin: str | Path, model: str | None) -> tuple:
    """(tuning, skin.json, its train settings, its data settings), skin.json read once. A skin imported from PEFT
    was not trained by lntune, so it has neither: lntune's defaults stand in (the whole dev split, seed 42, max
    length 128, ...)."""
    tuning, meta = load_skin(skin, model, require=EVAL_NEEDS)  # an imported skin needs none of them
    if meta.imported is None:
        return tuning, meta, meta.train.as_json(), {"eval_limit": meta.data.eval_limit}
    return tuning, meta, asdict(TrainConfig()), {"eval_limit": None}


def _generation(lm, t, data_dir, limit: int, seed: int, num_beams: int, batch_size: int, predictions=None,
                split: str = "dev", rows: list[dict] | None = None) -> dict:
    """Generation metrics on `limit` unique inputs of the whole `split` (-1 or None: all), or of `rows` (the
    validation slice of a task given without a dev file)."""
    if not t.gen_metrics:
        raise LntuneError(f"task {t.name} does not generate text; generation metrics need e2e, webnlg, dart, samsum")
    dev_ex = load_split(t, split, data_dir, None, seed) if rows is None else rows
    limit = None if limit is None or limit < 0 else limit
    return generation_metrics(lm, t, dev_ex, limit, seed, num_beams, batch_size, predictions)


def generate_skin(
    skin: str | Path,
    data_dir: str | Path | None = None,
    model: str | None = None,
    limit: int | None = None,
    num_beams: int | None = None,
    predictions: str | Path | None = None,
    task: str | None = None,
) -> dict:
    """Generation metrics of a skin; limit/num_beams default to those it saved (reproducing its numbers).

    >>> from lntune import generate_skin
    >>> generate_skin("runs/e2e-ln", limit=50)["metrics"]["bleu"]  # doctest: +SKIP
    0.4...
    """
    return _generate(_for_eval(skin, model), skin, data_dir, limit, num_beams, predictions, task)


def _generate(loaded: tuple, skin: str | Path, data_dir, limit: int | None, num_beams: int | None, predictions,
              task: str | None) -> dict:
    tuning, meta, cfg, _ = loaded
    saved = meta.generation.settings if meta.generation else None
    limit = (saved and saved.limit) if limit is None else limit
    num_beams = num_beams or (saved.num_beams if saved else 1)
    batch = (saved and saved.batch_size) or cfg["eval_batch_size"]
    with skin_task(skin, meta, task) as t:
        rows = _carved(t, data_dir, meta, cfg) if task is None else None
        return _generation(tuning.lm, t, data_dir, limit, cfg["seed"], num_beams, batch, predictions, rows=rows)


def generate_base(
    task: str,
    model: str,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    num_beams: int = 1,
    seed: int = 42,
    batch_size: int = 16,
    predictions: str | Path | None = None,
    dtype: str = "float32",
) -> dict:
    """Generation metrics of an untuned model: the baseline a skin is compared with.

    >>> from lntune import generate_base
    >>> generate_base("e2e", "smollm2", limit=50)["metrics"]["rougeL"]  # doctest: +SKIP
    0.2...
    """
    t = get_task(task)
    lm = load_model(model, t.head, max(len(t.labels), 1), dtype)
    return _generation(lm, t, data_dir, limit, seed, num_beams, batch_size, predictions)
