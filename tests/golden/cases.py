"""The golden cases: every method x head pair on tiny models, trained a few steps on fixed synthetic data.

One function, `run_case`, computes a case's outcome; the recorder (record.py) writes those outcomes to
golden.json and the test (test_golden.py) recomputes them with the same function and compares. The
module is deliberately self-contained (it does not import tests/conftest.py): the tiny models, data and
training options below are part of what the golden values mean, so a change to shared fixtures cannot
move them silently.

What a case records (see `run_case`):
  - "refused" (the error type) and "stage", when building or preparing the method raises an lntune
    error (stage "prepare": 3V on a head that is not sentence classification, BitFit on Llama), or
    training raises an lntune error or a RuntimeError (stage "train": "head" on causal-lm, which
    has no head, so nothing requires grad);
  - otherwise "losses" (the first 3 training losses), "metrics" (the dev metrics of the state the
    run keeps, with its step and epoch), "counts" (tuned / head / base parameter counts) and
    "tensors" (per tensor name of `tuning.state()`: shape, sum, L2 norm, sum of absolute values, and
    the L2 norm of the change training made to it).
"""
from __future__ import annotations

import math
import os
import random

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

H, L = 32, 4  # tiny hidden size and depth (as tests/conftest.py)
VOCAB = 30522  # the embedded MiniLM tokenizer's

# Methods: every registered one, plus composites. Kept as an explicit list (not read from METHODS) so a
# method that disappears from the registry fails the test instead of silently dropping out; the test
# also checks that every registered method is listed here.
METHODS = ["ln", "full", "bitfit", "seq_adapter_ffn", "seq_adapter_mha", "par_adapter_ffn", "lora", "prefix",
           "mam", "random", "3v", "head", "prefix+ln", "lora+ln"]

# (architecture, head): every head on BERT; the decoders with the heads the test suite builds them with.
MODELS = [("bert", "classification"), ("bert", "regression"), ("bert", "token-classification"),
          ("bert", "multiple-choice"), ("bert", "causal-lm"),
          ("gpt2", "classification"), ("gpt2", "causal-lm"),
          ("llama", "classification"), ("llama", "causal-lm")]

CASES = [(arch, head, method) for arch, head in MODELS for method in METHODS]

TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")  # token-classification labels, by id
N_TRAIN, N_DEV = 32, 16  # 4 training steps of batch 8
MAX_LENGTH = 32


def case_id(arch: str, head: str, method: str) -> str:
    return f"{arch}/{head}/{method}"


def train_config():
    from lntune.train import TrainConfig

    # 4 steps, evaluated after steps 2 and 4: the kept state is chosen (lowest dev loss) and restored.
    return TrainConfig(lr=1e-2, epochs=1, batch_size=8, eval_batch_size=16, max_length=MAX_LENGTH, eval_every=2,
                       progress=False, seed=0)


_TOKENIZER = None


def tokenizer():
    global _TOKENIZER
    if _TOKENIZER is None:
        from transformers import AutoTokenizer

        from lntune.model.load import resolve

        tok = AutoTokenizer.from_pretrained(resolve("minilm"))  # the embedded tokenizer only, no weights
        tok.eos_token = "[SEP]"  # decoders need an end-of-sequence token
        _TOKENIZER = tok
    return _TOKENIZER


def _config(arch: str):
    import transformers as tf

    if arch == "bert":
        return tf.BertConfig(vocab_size=VOCAB, hidden_size=H, num_hidden_layers=L, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=128, num_labels=2,
                             initializer_range=0.2)
    if arch == "gpt2":
        return tf.GPT2Config(vocab_size=VOCAB, n_embd=H, n_layer=L, n_head=2, n_positions=128, num_labels=2,
                             pad_token_id=0)
    if arch == "llama":
        return tf.LlamaConfig(vocab_size=VOCAB, hidden_size=H, num_hidden_layers=L, num_attention_heads=2,
                              num_key_value_heads=1, intermediate_size=64, max_position_embeddings=128,
                              num_labels=2, pad_token_id=0)
    raise ValueError(arch)


def tiny_lm(arch: str, head: str, seed: int = 0):
    """A randomly initialised tiny model with `head`, wrapped as load_model would."""
    import transformers as tf

    from lntune.model import wrap

    torch.manual_seed(seed)
    config = _config(arch)
    if head == "causal-lm":
        model = tf.AutoModelForCausalLM.from_config(config)
    elif head == "token-classification":
        config.num_labels = len(TAGS)
        model = tf.AutoModelForTokenClassification.from_config(config)
    elif head == "multiple-choice":
        model = tf.AutoModelForMultipleChoice.from_config(config)
    else:
        if head == "regression":
            config.num_labels, config.problem_type = 1, "regression"
        model = tf.AutoModelForSequenceClassification.from_config(config)
    heads = () if head == "causal-lm" else (("classifier.bias", "classifier.weight") if arch == "bert"
                                            else ("score.weight",))
    return wrap(model, tokenizer(), f"tiny-{arch}", head, heads)


WORDS = ["film", "story", "plot", "cast", "music", "scene", "actor", "ending"]
NAMES, PLACES = ["Ann", "Bob", "Carl", "Dora"], ["Oslo", "Rome", "Lima", "Kyiv"]


def rows(head: str, n: int, seed: int) -> list[dict]:
    """`n` synthetic examples for `head`, drawn from `seed` (the task's signal is a cue word)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if head == "causal-lm":
            good = rng.random() < 0.5
            prompt = " ".join(rng.choices(WORDS, k=4)) + " verdict:"
            out.append({"prompt": prompt, "target": ("great " if good else "awful ") + rng.choice(WORDS)})
        elif head == "token-classification":
            tokens, tags = [], []
            for _ in range(rng.randint(3, 7)):
                kind = rng.random()
                if kind < 0.2:
                    tokens += [rng.choice(NAMES), rng.choice(NAMES)]
                    tags += [1, 2]
                elif kind < 0.35:
                    tokens.append(rng.choice(PLACES))
                    tags.append(3)
                else:
                    tokens.append(rng.choice(WORDS))
                    tags.append(0)
            out.append({"tokens": tokens, "tags": tags})
        elif head == "multiple-choice":
            label = rng.randint(0, 2)
            choices = [" ".join(rng.choices(WORDS, k=2)) for _ in range(3)]
            choices[label] = "great " + choices[label]
            out.append({"context": " ".join(rng.choices(WORDS, k=5)), "question": "which is good?",
                        "choices": choices, "label": label})
        else:
            label = rng.randint(0, 1)
            text = " ".join(rng.choices(WORDS, k=4) + [("great" if label else "awful")] + rng.choices(WORDS, k=2))
            out.append({"text_a": text, "label": float(label) + rng.uniform(-0.2, 0.2) if head == "regression"
                        else label})
    return out


def summarise(tensor: torch.Tensor, before: torch.Tensor) -> dict:
    """Shape, sum, L2 norm and sum of absolute values of a tuned tensor after training, and the L2 norm
    of what training changed (`before`: its value once prepared), which stays sensitive where a tensor
    sits far from zero (LayerNorm gains near 1) and training moves it by little."""
    t = tensor.detach().cpu().double()
    return {"shape": list(tensor.shape), "sum": float(t.sum()), "norm": float(t.norm()),
            "abs_sum": float(t.abs().sum()), "delta_norm": float((t - before.detach().cpu().double()).norm())}


def _plain(value):
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return value


def run_case(arch: str, head: str, method: str) -> dict:
    """Train `method` on a tiny `arch` model with `head`; the case's outcome as plain JSON values."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the recorded values come from one thread; put the caller's count back after
    try:
        return _run(arch, head, method)
    finally:
        torch.set_num_threads(threads)


def _run(arch: str, head: str, method: str) -> dict:
    from lntune.errors import LntuneError
    from lntune.heads import encode
    from lntune.method import build_method, prepare
    from lntune.train import train

    config = train_config()
    lm = tiny_lm(arch, head)
    try:
        tuning = prepare(lm, build_method(method))
    except LntuneError as e:
        return {"refused": type(e).__name__, "stage": "prepare"}
    tok = lm.tokenizer
    train_f = encode(rows(head, N_TRAIN, 1), tok, head, MAX_LENGTH)
    dev_f = encode(rows(head, N_DEV, 2), tok, head, MAX_LENGTH)
    labels = TAGS if head == "token-classification" else ()
    before = tuning.state()
    try:
        result = train(tuning, train_f, dev_f, config, label_names=labels)
    except (LntuneError, RuntimeError) as e:  # e.g. "head" on causal-lm: nothing requires grad
        return {"refused": type(e).__name__, "stage": "train"}
    return {
        "losses": [float(x) for x in result.losses[:3]],
        "steps": result.steps,
        "metrics": {k: _plain(v) for k, v in sorted(result.best.items())},
        "counts": {k: _plain(v) for k, v in sorted(tuning.counts().items())},
        "tensors": {name: summarise(t, before[name]) for name, t in sorted(tuning.state().items())},
    }


# Tolerances: another CPU rounds differently (AVX-512 and AMX kernels on a newer Xeon moved values by up to
# 2e-5 relative from the recording machine's), so values are compared closely, never byte for byte. A change of
# behaviour (a random draw in another order, a step more or less, another lr) moves them by 1e-3 or far more.
REL, ABS = 1e-4, 1e-6  # losses and metrics
TENSOR_REL = 1e-4  # tensor sums, norms and absolute sums


def zero_gradient(name: str, head: str) -> bool:
    """Parameters whose gradient is zero in exact arithmetic, so what training does to them is rounding noise
    that Adam scales up to lr-sized steps, different on every CPU: an attention key's bias adds the same
    q.b_k to every key of a query (softmax ignores it), and a multiple-choice scorer's bias the same to every
    choice. GPT-2's fused c_attn.bias holds a key part too, but its query and value parts outweigh it."""
    return name.endswith("attention.self.key.bias") or (head == "multiple-choice" and name == "classifier.bias")


def _close(a, b, rel: float, abs_: float = 0.0) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def compare(expected: dict, got: dict, head: str) -> list[str]:
    """What differs between a recorded outcome and a recomputed one of a `head` case (empty: equal within
    tolerance)."""
    if "refused" in expected or "refused" in got:
        keys = ("refused", "stage")
        want, have = {k: expected.get(k) for k in keys}, {k: got.get(k) for k in keys}
        return [] if want == have else [f"refusal: recorded {want}, now {have}"]
    out = []
    if len(expected["losses"]) != len(got["losses"]):
        out.append(f"losses: recorded {expected['losses']}, now {got['losses']}")
    else:
        out += [f"loss {i + 1}: recorded {a!r}, now {b!r}" for i, (a, b) in enumerate(zip(expected["losses"], got["losses"]))
                if not _close(a, b, REL, ABS)]
    if expected["steps"] != got["steps"]:
        out.append(f"steps: recorded {expected['steps']}, now {got['steps']}")
    for part in ("metrics", "counts"):
        want, have = expected[part], got[part]
        if set(want) != set(have):
            out.append(f"{part} keys: recorded {sorted(want)}, now {sorted(have)}")
        out += [f"{part}[{k}]: recorded {want[k]!r}, now {have[k]!r}" for k in sorted(set(want) & set(have))
                if not _close(want[k], have[k], REL, ABS)]
    want, have = expected["tensors"], got["tensors"]
    if set(want) != set(have):
        out.append(f"tensor names: only recorded {sorted(set(want) - set(have))}, only now {sorted(set(have) - set(want))}")
    for name in sorted(n for n in set(want) & set(have) if not zero_gradient(n, head)):
        a, b = want[name], have[name]
        if a["shape"] != b["shape"]:
            out.append(f"{name} shape: recorded {a['shape']}, now {b['shape']}")
            continue
        # A sum can cancel to near zero; its rounding error is bounded by the sum of absolute values.
        # A change's norm can be near zero; float32 rounding of the tensor itself is ~1e-7 of its norm.
        checks = {"sum": (TENSOR_REL, TENSOR_REL * a["abs_sum"]), "norm": (TENSOR_REL, 0.0),
                  "abs_sum": (TENSOR_REL, 0.0), "delta_norm": (TENSOR_REL, 1e-7 * a["norm"])}
        out += [f"{name} {key}: recorded {a[key]!r}, now {b[key]!r}" for key, (rel, abs_) in checks.items()
                if not _close(a[key], b[key], rel, abs_)]
    return out
