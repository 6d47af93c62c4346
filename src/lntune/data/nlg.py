"""Generation tasks for decoders: data-to-text (E2E, WebNLG, DART) and dialogue summarisation (SAMSum).

Every example is {"prompt", "target"}: one (input, reference) pair, so the loss sees every reference.
For generation metrics, `group_references` folds the pairs back into one item per unique prompt
with all its references, as the official scorers do.

Which files train and which evaluate offline, where the real training sets are missing:
  e2e     train devset.csv, evaluate testset_w_refs.csv (as the E2E data README says)   hub GEM/e2e_nlg
  samsum  train validation/, evaluate test/                                   hub Samsung/samsum train/test
  webnlg  a fixed seeded split of dev.json's entries: 80% train, 20% dev      hub webnlg-challenge/web_nlg
  dart    a fixed seeded split of the dev file's triplesets: 80% train, 20% dev   hub Yale-LILY/dart
The carved splits use `dev_seed`, not the run's seed, so every run is scored on the same inputs.
When the upstream training files are present (e.g. WebNLG's train.json), they are read instead.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from lntune.data.task import Task
from lntune.errors import DataError

# Metric sets of paper 000 (sec. 4.1) and the official scripts each task is scored with.
E2E_METRICS = ("bleu", "nist", "meteor", "rouge_l", "cider")
TRIPLE_METRICS = ("bleu", "meteor", "ter")
SUMMARY_METRICS = ("rouge1", "rouge2", "rouge_l")


@dataclass(frozen=True)
class NLGTask(Task):
    """A causal-LM task whose dev split can also be scored on generated text."""

    head: str = "causal-lm"
    metric: str = "loss"  # cheap, and what checkpoints are chosen by
    max_new_tokens: int = 35  # generation budget, from paper 000 sec. 4.1
    gen_metrics: tuple[str, ...] = E2E_METRICS


@dataclass(frozen=True)
class CarvedNLGTask(NLGTask):
    """Offline, only one upstream file exists: carve a fixed dev share from it, by input."""

    dev_share: float = 0.2
    dev_seed: int = 0

    def read_items(self, path: Path) -> list[tuple[str, list[str]]]:
        """(prompt, references) per input of the file."""
        raise NotImplementedError

    def read_local(self, path: Path) -> list[dict]:
        return pairs(self.read_items(path))

    def load(self, split: str, data_dir: Path | None) -> list[dict]:
        if split not in self.splits:
            raise DataError(f"task {self.name}: no split {split!r}; it has {', '.join(self.splits)}")
        carve = data_dir is not None and not self.local_path(data_dir, "train").exists()
        if not carve or not self.local_path(data_dir, "dev").exists():
            return super().load(split, data_dir)  # the split's own file, or the hub
        items = _merge(self.read_items(self.local_path(data_dir, "dev")))
        n_dev = max(1, round(self.dev_share * len(items)))
        dev = set(random.Random(self.dev_seed).sample(range(len(items)), n_dev))
        return pairs([it for i, it in enumerate(items) if (i in dev) == (split == "dev")])


def _merge(items: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    # Some inputs recur in several records (WebNLG and DART both do): one input, all references,
    # so that carving cannot put the same input on both sides.
    refs: dict[str, list[str]] = {}
    for prompt, rs in items:
        refs.setdefault(prompt, []).extend(rs)
    return list(refs.items())


def pairs(items: list[tuple[str, list[str]]]) -> list[dict]:
    return [{"prompt": p, "target": " " + ref} for p, refs in items for ref in refs]


def group_references(examples: list[dict]) -> list[dict]:
    """One item per unique prompt, in first-seen order: {"prompt", "references"}."""
    refs: dict[str, list[str]] = {}
    for e in examples:
        refs.setdefault(e["prompt"], []).append(e["target"].strip())
    return [{"prompt": p, "references": r} for p, r in refs.items()]


def _load_json(path: Path, hint: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e}); {hint}") from e


# ---- WebNLG ----------------------------------------------------------------------------------

_WEBNLG_HINT = (
    "WebNLG files are the 2017 release's JSON: {\"entries\": [{\"ID\": {\"modifiedtripleset\": "
    "[{subject, property, object}], \"lexicalisations\": [{\"lex\": ...}]}}]}"
)


def triples_prompt(triples: list[tuple[str, str, str]]) -> str:
    # Entity names are DBpedia ids (Jacob_Bundsgaard): underscores become spaces, as in the references.
    text = " ; ".join(" | ".join(part.replace("_", " ").strip() for part in t) for t in triples)
    return f"Triples: {text}\nText:"


@dataclass(frozen=True)
class WebNLG(CarvedNLGTask):
    name: str = "webnlg"
    max_new_tokens: int = 45
    gen_metrics: tuple[str, ...] = TRIPLE_METRICS

    def local_path(self, data_dir: Path, split: str) -> Path:
        return data_dir / "nlg" / "webnlg" / f"{split}.json"

    def read_items(self, path: Path) -> list[tuple[str, list[str]]]:
        data = _load_json(path, _WEBNLG_HINT)
        entries = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(entries, list) or not entries:
            raise DataError(f"{path}: no \"entries\" list; {_WEBNLG_HINT}")
        items = []
        for i, wrapped in enumerate(entries):
            try:
                (entry,) = wrapped.values()
                triples = [(t["subject"], t["property"], t["object"]) for t in entry["modifiedtripleset"]]
                refs = [lex["lex"] for lex in entry["lexicalisations"]]
            except (AttributeError, KeyError, TypeError, ValueError) as e:
                raise DataError(f"{path}: entry {i} is malformed ({type(e).__name__}: {e}); {_WEBNLG_HINT}") from e
            if not triples or not refs:
                raise DataError(f"{path}: entry {i} has no triples or no lexicalisations; {_WEBNLG_HINT}")
            items.append((triples_prompt(triples), refs))
        return items

    @property
    def hub_dataset(self) -> tuple[str, ...]:
        return ('webnlg-challenge/web_nlg', 'webnlg_challenge_2017')

    def read_hub(self, split: str) -> list[dict]:
        import datasets

        rows = datasets.load_dataset(*self.hub_dataset, split=split)
        items = []
        for r in rows:
            (triple_set,) = r["modified_triple_sets"]["mtriple_set"][:1] or [[]]
            triples = [tuple(t.split(" | ")) for t in triple_set]
            items.append((triples_prompt(triples), list(r["lex"]["text"])))
        return pairs([it for it in items if it[1]])  # the hub's test rows carry no lexicalisations


# ---- DART -------------------------------------------------------------------------------------

_DART_HINT = "DART files are JSON lists of {\"tripleset\": [[s, p, o], ...], \"annotations\": [{\"text\": ...}]}"


@dataclass(frozen=True)
class DART(CarvedNLGTask):
    name: str = "dart"
    max_new_tokens: int = 45
    gen_metrics: tuple[str, ...] = TRIPLE_METRICS

    def local_path(self, data_dir: Path, split: str) -> Path:
        return data_dir / "nlg" / "dart" / f"dart-v1.1.1-full-{split}.json"

    def read_items(self, path: Path) -> list[tuple[str, list[str]]]:
        data = _load_json(path, _DART_HINT)
        if not isinstance(data, list) or not data:
            raise DataError(f"{path}: expected a non-empty JSON list; {_DART_HINT}")
        items = []
        for i, rec in enumerate(data):
            try:
                triples = [tuple(t) for t in rec["tripleset"]]
                refs = [a["text"] for a in rec["annotations"]]
            except (KeyError, TypeError) as e:
                raise DataError(f"{path}: record {i} is malformed ({type(e).__name__}: {e}); {_DART_HINT}") from e
            if not triples or not refs or any(len(t) != 3 for t in triples):
                raise DataError(f"{path}: record {i} needs 3-part triples and at least one annotation; {_DART_HINT}")
            items.append((triples_prompt(triples), refs))
        return items

    @property
    def hub_dataset(self) -> tuple[str, ...]:
        return ('Yale-LILY/dart',)

    def read_hub(self, split: str) -> list[dict]:
        import datasets

        rows = datasets.load_dataset(*self.hub_dataset, split={"train": "train", "dev": "validation"}[split])
        items = [(triples_prompt([tuple(t) for t in r["tripleset"]]), list(r["annotations"]["text"])) for r in rows]
        return pairs(items)


# ---- SAMSum -----------------------------------------------------------------------------------

_SAMSUM_FOLDERS = {"train": "validation", "dev": "test"}  # the training set is not offline
_SAMSUM_HINT = "SAMSum folders are datasets' save_to_disk output with columns dialogue and summary"


def summary_prompt(dialogue: str) -> str:
    return f"Dialogue: {dialogue.replace(chr(13), '').strip()}\nSummary:"


@dataclass(frozen=True)
class SAMSum(NLGTask):
    name: str = "samsum"
    max_new_tokens: int = 35
    gen_metrics: tuple[str, ...] = SUMMARY_METRICS

    def local_path(self, data_dir: Path, split: str) -> Path:
        return data_dir / "nlg" / "samsum" / _SAMSUM_FOLDERS[split]

    def read_local(self, path: Path) -> list[dict]:
        import datasets

        try:
            rows = datasets.load_from_disk(str(path))
        except Exception as e:  # datasets raises FileNotFoundError or its own errors for broken folders
            raise DataError(f"{path}: not a readable datasets folder ({e}); {_SAMSUM_HINT}") from e
        missing = [c for c in ("dialogue", "summary") if c not in rows.column_names]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing} (has {rows.column_names}); {_SAMSUM_HINT}")
        return self._examples(rows)

    @property
    def hub_dataset(self) -> tuple[str, ...]:
        return ('Samsung/samsum',)

    def read_hub(self, split: str) -> list[dict]:
        import datasets

        return self._examples(datasets.load_dataset(*self.hub_dataset, split={"train": "train", "dev": "test"}[split]))

    def _examples(self, rows) -> list[dict]:
        # A few upstream dialogues are empty; they have nothing to summarise.
        return [
            {"prompt": summary_prompt(r["dialogue"]), "target": " " + r["summary"].strip()}
            for r in rows
            if r["dialogue"] and r["summary"]
        ]
