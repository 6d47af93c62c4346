"""The training loop: the step (lntune.train.step), linear schedule, evaluation, early stopping,
best-state restore, and the frozen bottom (eval mode and the cache, lntune.train.cache)."""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lntune.data.encode import collate
from lntune.errors import FewStepsWarning, TrainingError
from lntune.evaluate import evaluate
from lntune.method.tuning import Tuning
from lntune.spec.train import TrainConfig
from lntune.train.cache import FrozenBottom, setup
from lntune.train.checkpoint import Checkpointer, progress, set_rng_state
from lntune.train.log import RunLog, check_tracker
from lntune.train.rows import unwrap
from lntune.train.split import probes
from lntune.train.step import Step, check_batches, make_accelerator, micro_batches, optimizer  # noqa: F401 - also imported from here


@dataclass
class TrainResult:
    best: dict  # dev metrics of the kept state (config.select: lowest validation loss or best score), with step and epoch
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)  # training loss of every step
    cache: dict = field(default_factory=dict)  # the frozen-bottom cache: site, batches served and recorded
    epoch_seconds: list[float] = field(default_factory=list)  # training time of each epoch, evaluations excluded
    best_seconds: float = 0.0  # training time (evaluations excluded) until the kept state was reached
    evaluated: int = 0  # dev examples the last evaluation covered (over all processes, repeats dropped)
    curve: list[dict] = field(default_factory=list)  # Curve's metrics after each listed epoch, with epoch and step


@dataclass(frozen=True)
class Score:
    """The task's main metric and its direction: what select="score" keeps the best state by."""

    metric: str
    greater_is_better: bool = True


@dataclass(frozen=True)
class Curve:
    """Examples scored after each of `epochs` (1-based), beside the validation that selects the kept state."""

    feats: list[dict]
    epochs: frozenset[int]

    def loader(self, tuning: Tuning, config: TrainConfig) -> DataLoader:
        return eval_loader(self.feats, config.eval_batch_size, tuning.lm.tokenizer.pad_token_id)


FEW_STEPS = 100  # below this, runs on the papers' tasks were still far from their score (issue 25: 4 steps, 0.58)


def few_steps(total: int, per_epoch: int, config: TrainConfig) -> None:
    """Warn when a run will take fewer than FEW_STEPS optimizer steps, and say what to raise. A warning only: the
    schedule stays as asked (epochs=0, a baseline, is meant to take none)."""
    if total == 0 or total >= FEW_STEPS:
        return
    how = ("raise max_steps (--max-steps)" if config.max_steps else
           f"raise epochs to {math.ceil(FEW_STEPS / max(per_epoch, 1))} (--epochs) or lower batch_size (--batch-size)")
    warnings.warn(f"this run takes {total} optimizer steps ({per_epoch} per epoch at batch size {config.batch_size}); "
                  f"fewer than about {FEW_STEPS} often under-trains: {how}", FewStepsWarning, stacklevel=4)


def eval_loader(feats: list[dict], batch_size: int, pad_id: int) -> DataLoader:
    """Encoded examples in order, padded batches of `batch_size`: what scoring a split reads."""
    return DataLoader(feats, batch_size, shuffle=False, collate_fn=partial(collate, pad_id=pad_id))


def _selector(config: TrainConfig, score: Score | None):
    """metrics -> the selected quantity, signed so that lower is better."""
    if config.select == "loss":
        return lambda m: m["loss"]
    if score is None:
        raise TrainingError("--select score needs the task's metric; this caller passed none (use --select loss)")

    def value(m: dict) -> float:
        if score.metric not in m:
            raise TrainingError(f"--select score: the validation metrics have no {score.metric} (they have "
                                f"{', '.join(k for k in m if k not in ('step', 'epoch'))}); use --select loss")
        return -m[score.metric] if score.greater_is_better else m[score.metric]

    return value


def loaders(tuning: Tuning, train_feats, dev_feats, config: TrainConfig, indexed: bool = False):
    """Train (shuffled, seeded) and dev loaders; `indexed` batches carry "_index", the example ids."""
    pad = tuning.lm.tokenizer.pad_token_id
    gen = torch.Generator().manual_seed(config.seed)
    col = partial(_indexed_collate if indexed else collate, pad_id=pad)
    if indexed:
        train_feats, dev_feats = list(enumerate(train_feats)), list(enumerate(dev_feats))
    # One loader batch is one optimizer step; Step.accumulate cuts it into grad_accum passes.
    train = DataLoader(train_feats, config.batch_size * config.grad_accum, shuffle=True, collate_fn=col, generator=gen)
    dev = DataLoader(dev_feats, config.eval_batch_size, shuffle=False, collate_fn=col)
    return train, dev


def _indexed_collate(items: list[tuple[int, dict]], pad_id: int) -> dict:
    batch = collate([f for _, f in items], pad_id)
    batch["_index"] = torch.tensor([i for i, _ in items])
    return batch


class _Selecting:
    """Iterate a loader, telling the frozen bottom which examples each batch holds; with `acc`, also
    collect the ids of the examples it covered, gathered across processes (repeats dropped). With
    `parts`, each batch comes as its micro-batches (_Micro), each selected as it runs."""

    def __init__(self, loader, bottom: FrozenBottom, name: str, acc=None, parts: int = 0, head: str = "") -> None:
        self.loader, self.bottom, self.name, self.acc, self.parts, self.head = loader, bottom, name, acc, parts, head
        self.seen: set[int] = set()

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if self.parts:
                yield _Micro(micro_batches(batch, self.parts, self.head), self.bottom, self.name)
                continue
            index = batch.pop("_index")
            if self.acc is not None:
                self.seen.update(self.acc.gather_for_metrics(index).tolist())
            self.bottom.select(self.name, index)
            yield batch
        self.bottom.select(None, None)


class _Micro:
    """One optimizer step's micro-batches with their loss weights; iterating tells the frozen bottom
    which examples each one holds, just before it runs."""

    def __init__(self, chunks: list[tuple[dict, float]], bottom: FrozenBottom, name: str) -> None:
        self.chunks, self.bottom, self.name = chunks, bottom, name

    def __len__(self) -> int:
        return len(self.chunks)

    def __iter__(self):
        for chunk, weight in self.chunks:
            chunk = dict(chunk)
            self.bottom.select(self.name, chunk.pop("_index"))
            yield chunk, weight


def train(
    tuning: Tuning, train_feats: list[dict], dev_feats: list[dict], config: TrainConfig, label_names: tuple[str, ...] = (),
    checkpoint: Checkpointer | None = None, log_dir: str | Path | None = None, score: Score | None = None,
    curve: Curve | None = None,
) -> TrainResult:
    """Train `tuning`'s tensors, evaluate on dev, and leave the model in its best-loss state.

    >>> from lntune import TrainConfig, build_method, load_model, prepare, train
    >>> from lntune.heads import encode
    >>> lm = load_model("minilm", seed=0)
    >>> rows = [{"text_a": t, "label": y} for t, y in [("a great film", 1), ("an awful plot", 0)] * 8]
    >>> feats = encode(rows, lm.tokenizer, "classification", 32)
    >>> result = train(prepare(lm, build_method("ln")), feats, feats, TrainConfig(epochs=1, progress=False))
    >>> result.steps, sorted(result.best)[:2]
    (1, ['accuracy', 'epoch'])

    `label_names` (the task's labels) let token-classification report entity scores; with
    epochs=0 the untrained model is evaluated once, a baseline run. `checkpoint` saves the run's
    state at each evaluation and, when it holds a loaded checkpoint (`resumed`), continues from it.
    `log_dir` gets metrics.jsonl (every step and evaluation; lntune.train.log) and the trackers' files.
    `score` names the task's main metric, which `config.select="score"` keeps the best state by; `curve`
    scores other examples (a sweep's reported split) after the listed epochs, a budget curve on one schedule.
    Under a multi-process launch the processes train one model together (DDP), each on its share
    of every batch, and evaluate on shares of the dev set whose metrics are gathered."""
    from accelerate.utils import set_seed

    set_seed(config.seed)
    check_tracker(config.report_to)
    acc = make_accelerator(config.mixed_precision, config.report_to, log_dir)
    check_batches(config, acc.num_processes)
    pad = tuning.lm.tokenizer.pad_token_id
    batches = probes(train_feats, partial(collate, pad_id=pad), pad) if train_feats else []
    bottom = setup(tuning, {"train": train_feats, "dev": dev_feats}, batches, config)
    try:
        with warnings.catch_warnings():
            # torch's SDPA says this whenever bf16 autocast trains with attention dropout on CPU: nothing the user
            # can act on (the masks are the ones training means to draw)
            warnings.filterwarnings("ignore", message="Dropout mask should only be used for testing",
                                    category=UserWarning)
            return _train(tuning, config, label_names, acc, bottom, batches, train_feats, dev_feats, checkpoint,
                          log_dir, _selector(config, score), curve)
    finally:
        bottom.close()  # also when setting up failed: the disk-backed cache goes


def _train(tuning, config, label_names, acc, bottom, batches, train_feats, dev_feats, saver, log_dir, selector,
           curve) -> TrainResult:
    run = _Run(tuning, config, label_names, acc, bottom, batches, train_feats, dev_feats, saver, log_dir, selector)
    try:
        with bottom.active(run.inner):
            run.loop(curve)
    finally:
        run.close()
    tuning.load_state(run.state.snapshot, "best checkpoint")
    return run.result()


class _Run:
    """One training run's loop: its step, loaders, state, log and progress bar; `loop` trains, `evaluate` keeps
    the best state and says when patience ran out, `save` checkpoints."""

    def __init__(self, tuning, config, label_names, acc, bottom, batches, train_feats, dev_feats, saver, log_dir,
                 selector) -> None:
        self.tuning, self.config, self.label_names, self.acc, self.bottom = tuning, config, label_names, acc, bottom
        self.saver, self.selector, self.feats = saver, selector, {"train": train_feats, "dev": dev_feats}
        train_dl, dev_dl = loaders(tuning, train_feats, dev_feats, config, indexed=True)
        self.order = train_dl.generator  # the shuffle's generator: each epoch's order continues its stream
        self.total = config.max_steps or config.epochs * len(train_dl)
        if acc.is_main_process and (saver is None or saver.resumed is None):  # said once, at the start
            few_steps(self.total, len(train_dl), config)
        last = f"{tuning.lm.norms.blocks}.{tuning.lm.norms.num_layers - 1}."
        cut = not (bottom.site or "").startswith(last)  # a cache serving the last block feeds it whole rows
        self.step = Step(tuning, config, self.total, train_dl, dev_dl, acc=acc, probes=batches, cut=cut)
        self.model = self.step.model
        self.inner = unwrap(self.model)  # the model inside DDP: the frozen bottom names its modules
        self.train_dl = _Selecting(self.step.loaders[0], bottom, "train", parts=config.grad_accum, head=tuning.lm.head)
        self.dev_dl = _Selecting(self.step.loaders[1], bottom, "dev", acc)
        self.head = tuning.lm.head
        self.state = _State(best_value=math.inf)
        self.data = saver.data_digest(train_feats, dev_feats) if saver is not None else None
        self.resumed = saver.resumed if saver is not None else None
        if self.resumed is not None:
            saver.check(acc, tuning.lm.fingerprint, self.data)
            self.state = _restore(self.resumed, tuning, self.step, acc)
        self.log = RunLog(log_dir, acc, asdict(config), self.state.step if self.resumed is not None else None)
        self.bar = tqdm(total=self.total, initial=self.state.step, desc="train", unit="step",
                        disable=not (config.progress and acc.is_main_process))
        self.start = time.perf_counter() - self.state.seconds  # a resumed run's clock goes on from the checkpoint's

    def evaluate(self, epoch: int) -> bool:
        """Evaluate on dev, keep the state when it is better; True when patience has run out."""
        state, config = self.state, self.config
        began = time.perf_counter()
        trained = began - self.start - state.eval_seconds
        self.dev_dl.seen.clear()
        m = evaluate(self.model, self.dev_dl, self.head, self.acc, self.label_names)
        state.evaluated = len(self.dev_dl.seen)
        self.bottom.set_eval(self.inner)  # evaluate() put every module back in training mode
        m.update(step=state.step, epoch=epoch)
        state.history.append(m)
        self.log.evaluation(m)
        if not self.bar.disable:
            self.bar.write(f"eval step {state.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()
                                                                  if isinstance(v, float)))
        value = self.selector(m)
        if value < state.best_value - config.min_delta:
            state.best_value, state.best, state.snapshot, state.bad = value, m, self.tuning.state(), 0
            state.best_seconds = trained
        else:
            state.bad += 1
        state.eval_seconds += time.perf_counter() - began
        return config.patience is not None and state.bad >= config.patience

    def save(self, epoch: int, skip: int, done: bool, epoch_trained: float, loader_state: torch.Tensor) -> None:
        """After an evaluation: where the run is (resume skips `skip` batches of `epoch`, whose order
        `loader_state` draws) and everything it has."""
        if self.saver is None:
            return
        state, tuning, step, bottom = self.state, self.tuning, self.step, self.bottom
        state.seconds = time.perf_counter() - self.start
        self.saver.save(self.acc, {
            "position": {"epoch": epoch, "skip": skip, "done": done, "epoch_trained": epoch_trained},
            "loader": loader_state,
            "current": tuning.state(),
            "optimizer": step.opt.state_dict(),
            "schedule": step.sched.state_dict(),
            "scaler": self.acc.scaler.state_dict() if self.acc.scaler is not None else None,
            "snapshot": state.snapshot,
            "progress": progress(state),
            "cache": {"log": bottom.log, "served": bottom.served, "recorded": bottom.captured},
            "model": tuning.lm.fingerprint,
            "data": self.data,
        })

    def loop(self, curve: Curve | None) -> None:
        """Every epoch from where the run is (the start, or a resumed checkpoint's position) to the end."""
        state, config, resumed, order, total = self.state, self.config, self.resumed, self.order, self.total
        epochs = math.ceil(total / len(self.train_dl)) if config.max_steps else config.epochs
        first, skip, stop, carried = 1, 0, False, 0.0
        rng = None  # a resumed run's generators, put back where the checkpoint took them
        if resumed is not None:
            position = resumed["position"]
            first, skip, stop, carried = position["epoch"], position["skip"], position["done"], position["epoch_trained"]
            order.set_state(resumed["loader"])
            rng = resumed["rng"][self.acc.process_index]
            if stop and skip:  # it ended inside an epoch, whose time was not in the list yet
                state.epoch_seconds.append(carried)
            self.bottom.replay(self.inner, resumed["cache"]["log"], self.feats,
                               partial(collate, pad_id=self.tuning.lm.tokenizer.pad_token_id), self.acc.device)
            self.bottom.served, self.bottom.captured = resumed["cache"]["served"], resumed["cache"]["recorded"]
        if total == 0 and resumed is None:
            stop = self.evaluate(0)
            self.save(1, 0, True, 0.0, order.get_state())
        for epoch in range(first, epochs + 1):
            if stop or state.step >= total:
                break
            self.model.train()
            self.bottom.set_eval(self.inner)
            epoch_start = order.get_state()
            if rng is not None and not skip:  # checkpointed at an epoch's end: before this epoch's order is drawn
                set_rng_state(rng)
                rng = None
            began = time.perf_counter() - carried
            stop, rng, evaluating = self._epoch(epoch, skip, rng, began, epoch_start)
            carried, skip = 0.0, 0
            if rng is not None:  # checkpointed after the epoch's last batch
                set_rng_state(rng)
                rng = None
            state.epoch_seconds.append(time.perf_counter() - began - evaluating)
            evaluated = state.history and state.history[-1]["step"] == state.step
            if not stop and not evaluated and (not config.eval_every or state.step >= total):
                stop = self.evaluate(epoch)
                self.save(epoch + 1, 0, stop or state.step >= total, 0.0, order.get_state())
            if curve is not None and epoch in curve.epochs:
                t = time.perf_counter()
                state.curve.append({**evaluate(self.model, curve.loader(self.tuning, config), self.head, self.acc,
                                               self.label_names), "epoch": epoch, "step": state.step})
                self.bottom.set_eval(self.inner)
                state.eval_seconds += time.perf_counter() - t
            if stop or state.step >= total:
                break

    def _epoch(self, epoch: int, skip: int, rng, began: float, epoch_start) -> tuple[bool, object, float]:
        """One epoch's batches (the first `skip` were trained before a checkpoint: drawn again, skipped);
        returns (stop, the generators still to put back, seconds spent evaluating)."""
        state, config, step, total = self.state, self.config, self.step, self.total
        stop, evaluating = False, 0.0
        for i, batch in enumerate(self.train_dl):
            if i < skip:
                continue
            if rng is not None:
                set_rng_state(rng)
                rng = None
            loss = step.accumulate(batch)
            # several processes: the global batch's loss, so every process stops on a NaN together
            seen = self.acc.reduce(loss, "mean") if self.acc.num_processes > 1 else loss
            if not torch.isfinite(seen):  # before the update: the tuned tensors stay finite
                raise TrainingError(
                    f"loss is {seen.item()} at step {state.step + 1} (lr {config.lr}); "
                    "lower --lr, or train in float32 without --mixed-precision"
                )
            step.apply()
            state.step += 1
            state.losses.append(seen.item())
            self.log.step(state.step, epoch, state.losses[-1], step.sched.get_last_lr()[0])
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{state.losses[-1]:.4f}", epoch=epoch)
            if config.eval_every and state.step % config.eval_every == 0:
                t = time.perf_counter()
                stop = self.evaluate(epoch)
                evaluating += time.perf_counter() - t
                self.save(epoch, i + 1, stop or state.step >= total, time.perf_counter() - began - evaluating,
                          epoch_start)
            if stop or state.step >= total:
                break
        return stop, rng, evaluating

    def close(self) -> None:
        self.bar.close()
        self.step.close()
        self.log.close()

    def result(self) -> TrainResult:
        state, bottom = self.state, self.bottom
        cache = {}
        if bottom.split is not None:
            cache = {"lowest": bottom.split.lowest, "site": bottom.site,
                     "granularity": bottom.split.granularity if bottom.site else None,
                     "served": bottom.served, "recorded": bottom.captured}
        return TrainResult(state.best, state.history, state.step, time.perf_counter() - self.start, state.losses,
                           cache, state.epoch_seconds, state.best_seconds, state.evaluated, state.curve)


def _restore(saved: dict, tuning: Tuning, step: Step, acc) -> _State:
    """Put a checkpoint's tensors, optimizer, schedule and bookkeeping back (its RNG states and data
    position are the loop's to restore, at the point in the stream where they were taken)."""
    tuning.load_state(saved["current"], "checkpoint")
    if step.packed is not None:
        step.packed.bind()  # the flat buffers take the tensors' values (masked ones' masked-in elements too)
    step.opt.load_state_dict(saved["optimizer"])
    step.sched.load_state_dict(saved["schedule"])
    if acc.scaler is not None and saved["scaler"] is not None:
        acc.scaler.load_state_dict(saved["scaler"])
    values = json.loads(saved["progress"])
    if "best_loss" in values:  # a checkpoint written before select: the loss was the only selected quantity
        values["best_value"] = values.pop("best_loss")
    return _State(**values, snapshot=saved["snapshot"])


@dataclass
class _State:
    best_value: float  # the best selected quantity so far, signed so that lower is better
    best: dict = field(default_factory=dict)
    snapshot: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    step: int = 0
    bad: int = 0
    losses: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    eval_seconds: float = 0.0
    best_seconds: float = 0.0
    seconds: float = 0.0  # time since training began, at the last checkpoint
    evaluated: int = 0  # examples in the last evaluation, over all processes
    curve: list[dict] = field(default_factory=list)
