"""Empirical Fisher information, per example (paper 002 eq. 2).

F_i = 1/N sum_j (d log p(y_j | x_j) / d w_i)^2 at the true label y_j, with one gradient per
example: torch.func vmaps grad(log-likelihood) over a padded batch. Regression uses the
unit-variance Gaussian log-likelihood -(f(x) - y)^2 / 2; causal LMs and token classification
the summed log-probability of the labelled tokens; multiple choice the softmax over choices.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

from lntune.data.encode import collate
from lntune.heads import encode, get_head
from lntune.analyse.components import components, lm_parts, mean_by, records, sum_by
from lntune.analyse.files import load_tensors, save_tensors
from lntune.api import load_split
from lntune.data import get_task
from lntune.errors import LntuneError
from lntune.method.ln import LNConfig, select_norm_params
from lntune.model import load_model


@dataclass
class FisherConfig:
    examples: int = 64  # N: training examples the Fisher averages over (seeded subset)
    batch_size: int = 8  # examples per vmapped call; memory grows with batch_size x tuned size
    ln_only: bool = False  # only LN gains/biases: what masks need, and much cheaper
    max_length: int = 128  # tokens per example
    seed: int = 42  # picks the examples and initialises the task head
    progress: bool = True  # tqdm bar on stderr


VMAP_ATTENTION = "lntune_vmap"  # SDPA attention whose mask code never branches on tensor values


def _vmap_safe_mask(*args, **kwargs):
    # HF skips building a mask when it sees no padding; that check reads tensor values, which vmap
    # cannot do. Always building it gives the same attention.
    from transformers.masking_utils import sdpa_mask

    return sdpa_mask(*args, **{**kwargs, "allow_is_causal_skip": False, "allow_is_bidirectional_skip": False})


@contextmanager
def vmap_attention(model: torch.nn.Module):
    """Run `model` with SDPA attention and always-built masks, then restore its implementation."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    AttentionInterface.register(VMAP_ATTENTION, sdpa_attention_forward)
    AttentionMaskInterface.register(VMAP_ATTENTION, _vmap_safe_mask)
    before = model.config._attn_implementation
    model.set_attn_implementation(VMAP_ATTENTION)
    try:
        yield model
    finally:
        model.set_attn_implementation(before)


def per_example_grads(model, params: dict[str, torch.Tensor], batch: dict, head: str) -> dict:
    """{name: [B, *shape]} gradients of each example's log-likelihood with respect to `params`.

    Call inside `vmap_attention(model)`."""
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels"}

    def ll(p, x, y):
        out = functional_call(model, p, args=(), kwargs={k: v[None] for k, v in x.items()})
        return get_head(head).log_likelihood(out.logits[0], y)

    return vmap(grad(ll), in_dims=(None, 0, 0))(params, inputs, labels)


@torch.no_grad()  # torch.func.grad still differentiates inside; no graph builds on the real parameters
def empirical_fisher(lm, feats: list[dict], names: list[str], batch_size: int = 8, progress: bool = True) -> dict:
    """Mean over `feats` of the squared per-example gradient of every parameter in `names`."""
    model = lm.model
    was_training = model.training
    model.eval()  # no dropout: the Fisher of the model as it is
    device = next(model.parameters()).device
    named = dict(model.named_parameters())
    params = {n: named[n].detach() for n in names}
    total = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
    col = partial(collate, pad_id=lm.tokenizer.pad_token_id)
    bar = tqdm(total=len(feats), desc="fisher", unit="ex", disable=not progress)
    with vmap_attention(model), warnings.catch_warnings():
        # vmap loops over SDPA's CPU kernel: correct, slower, and it says so
        warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet")
        for start in range(0, len(feats), batch_size):
            chunk = feats[start : start + batch_size]
            batch = {k: v.to(device) for k, v in col(chunk).items()}
            for n, g in per_example_grads(model, params, batch, lm.head).items():
                total[n] += g.float().pow(2).sum(0)
            bar.update(len(chunk))
    bar.close()
    model.train(was_training)
    return {n: t / max(len(feats), 1) for n, t in total.items()}


@dataclass
class TaskFisher:
    """Fisher of one task: per element for the LN parameters, per tensor sums for all measured."""

    task: str
    model: str  # base model id
    fingerprint: str  # of the base weights: masks must go back onto the same base
    ln: dict[str, torch.Tensor]  # LN parameter name -> per-element Fisher
    rows: list[dict]  # components.records of every measured parameter ("sum" = summed Fisher)
    config: FisherConfig


def ln_names(lm) -> list[str]:
    """The LN tensors `--method ln` selects by default, so masks over them train as they are."""
    return [n for n, _ in select_norm_params(lm.norms, LNConfig())]


def task_fisher(task: str, model: str, config: FisherConfig, data_dir=None, norm_map: dict | None = None) -> TaskFisher:
    """Fisher of `model` with a fresh (seeded) head on a seeded subset of `task`'s training split."""
    t = get_task(task)
    examples = load_split(task, "train", data_dir, config.examples, config.seed)
    torch.manual_seed(config.seed)  # the head starts random; seeding makes the Fisher repeatable
    lm = load_model(model, t.head, max(len(t.labels), 1), norm_map=norm_map)
    ln = ln_names(lm)
    names = ln if config.ln_only else [n for n, _ in lm.base_parameters()]
    feats = encode(examples, lm.tokenizer, t.head, config.max_length)
    fisher = empirical_fisher(lm, feats, names, config.batch_size, config.progress)
    return TaskFisher(task, model, lm.fingerprint, {n: fisher[n] for n in ln}, records(fisher, lm_parts(lm)), config)


def save_fisher(path, result: TaskFisher):
    """safetensors of the per-element LN Fisher; metadata says where it came from."""
    from dataclasses import asdict

    meta = {
        "task": result.task,
        "model": result.model,
        "fingerprint": result.fingerprint,
        "config": asdict(result.config),
    }
    return save_tensors(path, result.ln, meta)


def load_fisher(path) -> tuple[dict[str, torch.Tensor], dict]:
    try:
        tensors, meta = load_tensors(path)
    except Exception as e:  # missing or not safetensors: say how to make one
        raise LntuneError(f"{path}: cannot read a Fisher file ({e}); make it with lntune analyse fisher") from e
    if "task" not in meta:
        raise LntuneError(f"{path}: no task in its metadata; it was not written by lntune analyse fisher")
    return tensors, meta


def fisher_ranking(results: list[TaskFisher], blocks_only: bool = False) -> list[dict]:
    """Paper 002 table 1: mean Fisher per component, normalised by each task's total, summed over tasks.

    `blocks_only` ranks the components inside the transformer blocks alone, as the paper's table does.
    """
    per_task, keep = {}, (lambda row: row["layer"] is not None) if blocks_only else (lambda row: True)
    for r in results:
        means = {k[0]: v for k, v in mean_by([x for x in r.rows if keep(x)], ("component",)).items()}
        total = sum(means.values()) or 1.0  # so a task with little information is not drowned out
        per_task[r.task] = {c: v / total for c, v in means.items()}
    rows = [
        {"component": c, **{t: v[c] for t, v in per_task.items()}}
        for c in components([x for x in results[0].rows if keep(x)])
    ]
    for row in rows:
        row["sum"] = sum(row[t] for t in per_task)
    rows.sort(key=lambda row: -row["sum"])
    return [{"rank": i + 1, **row} for i, row in enumerate(rows)]


def ln_position(norm: str, layer: int | None) -> str:
    """Layer index for norms in blocks; the label (embeddings, final) for the ones outside."""
    return norm if layer is None else str(layer)


def ln_shares(result: TaskFisher) -> dict[tuple[str, str], float]:
    """{(term, position): summed Fisher / the task's total LN Fisher} (paper 002 fig. 3)."""
    ln = [r for r in result.rows if r["norm"] is not None]
    total = sum(r["sum"] for r in ln) or 1.0
    out: dict[tuple[str, str], float] = {}
    for (norm, layer, term), v in sum_by(ln, ("norm", "layer", "term")).items():
        key = (term, ln_position(norm, layer))
        out[key] = out.get(key, 0.0) + v / total
    return out


def fisher_path(folder, task: str):
    from pathlib import Path

    return Path(folder) / f"fisher-{task}.safetensors"


def load_fisher_dir(folder, tasks: list[str] | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """{task: LN Fisher} from fisher-<task>.safetensors files; all of one base model."""
    from pathlib import Path

    paths = [fisher_path(folder, t) for t in tasks] if tasks else sorted(Path(folder).glob("fisher-*.safetensors"))
    missing = [str(p) for p in paths if not p.exists()]
    if missing or not paths:
        raise LntuneError(
            f"no Fisher file {missing[0] if missing else f'in {folder}'}; "
            f"make it with lntune analyse fisher --out {folder}"
        )
    out, prints = {}, {}
    for p in paths:
        tensors, meta = load_fisher(p)
        out[meta["task"]] = tensors
        prints[meta["task"]] = meta.get("fingerprint")
    if len(set(prints.values())) > 1:
        raise LntuneError(
            f"{folder}: Fisher files come from different base models ({prints}); keep one model per folder"
        )
    return out
