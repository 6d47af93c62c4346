"""Named-entity recognition: words with BIO tags, scored by entity-level F1 (seqeval).

Every NER task yields {"tokens": [word, ...], "tags": [tag id, ...]} where a tag id indexes
the task's `labels`, a fixed tuple ("O", "B-X", "I-X", ...) that skins record by name.

Files in the BILOU/IOBES schemes (CoNLL04's upstream JSON uses BILOU) are read as BIO:
L-/E- become I- and U-/S- become B-. The entities are the same, so entity-level scores
are unchanged, and every task shares one scheme.

    conll04       ner/conll04/conll04_{train,dev,test}.json (SpERT/TablERT JSON)
    btc           ner/btc/{a,b,e,f,g,h}.conll; section f is the test split, as upstream;
                  dev is a fixed, seeded 1,000 tweets of a,b,e,g,h (the same for every training
                  seed; half the tweets for folders smaller than 2,000), train the other 6,339
    conll:DIR     your own CoNLL files DIR/{train,dev[,test]}.conll, or
    conll:train=PATH,dev=PATH[,test=PATH]; labels are inferred from the training file
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Callable

from lntune.data.files import clip, codec_for, read_text, save_as_utf8, spec_encoding_fix
from lntune.data.task import Task
from lntune.errors import DataError

_TO_BIO = {"B": "B", "I": "I", "L": "I", "E": "I", "U": "B", "S": "B"}


def bio_labels(types: tuple[str, ...]) -> tuple[str, ...]:
    """("O", "B-t1", "I-t1", "B-t2", ...): the label ids of a tagger over `types`."""
    return ("O", *(f"{p}-{t}" for t in types for p in "BI"))


def to_bio(tag: str) -> str | None:
    """The BIO spelling of a BIO/BILOU/IOBES tag; None if it is in no such scheme."""
    if tag == "O":
        return tag
    prefix, sep, kind = tag.partition("-")
    if not sep or not kind or prefix not in _TO_BIO:
        return None
    return f"{_TO_BIO[prefix]}-{kind}"


def _splits_a_token(rows: list[str], i: int) -> bool:
    """Whether whitespace-only row i is the first half of a token that holds a line break (BTC f.conll
    has one: a line of spaces, then `<TAB>tag`), rather than a sentence separator."""
    text = rows[i].rstrip("\r")
    return bool(text) and "\t" not in text and i + 1 < len(rows) and rows[i + 1].startswith("\t") \
        and bool(rows[i + 1].strip())


def read_conll(
    path: Path, hint: str, encoding: str = "utf-8", fix: Callable[[str], str] = save_as_utf8,
) -> list[tuple[list[int], list[str], list[str]]]:
    """(line numbers, words, tags) per sentence: `token<TAB>tag` (or space-separated columns, tag
    last) per line, a blank or whitespace-only line between sentences; -DOCSTART- lines are skipped."""
    if not path.is_file():
        raise DataError(f"{path}: {'is a folder, not a file' if path.is_dir() else 'file not found'}; {hint}")
    sentences, current = [], []
    # split("\n"), not splitlines(): tweets hold characters that splitlines() reads as line breaks
    rows = read_text(path, encoding, fix).split("\n")
    for i, raw in enumerate(rows):
        text = raw.rstrip("\r")
        if not text.strip() and _splits_a_token(rows, i):
            continue
        if not text.strip() or text.split()[0] == "-DOCSTART-":  # a sentence never spans documents
            if current:
                sentences.append(tuple(map(list, zip(*current))))
            current = []
            continue
        # Tweets hold tokens that are only spaces, so split on tabs when the file uses them.
        fields = text.split("\t") if "\t" in text else text.split()
        if len(fields) < 2:
            raise DataError(f"{path}:{i + 1}: expected `token<TAB>tag`, got {clip(text)}; {hint}")
        current.append((i + 1, fields[0], fields[-1].strip()))
    if current:
        sentences.append(tuple(map(list, zip(*current))))
    if not sentences:
        raise DataError(f"{path}: the file is empty; {hint}")
    return sentences


@dataclass(frozen=True)
class NerTask(Task):
    head: str = "token-classification"
    metric: str = "f1"  # entity-level micro F1 (seqeval), the CoNLL convention
    splits: tuple[str, ...] = ("train", "dev", "test")

    def unknown_tag_fix(self) -> str:
        return "fix the tag, or train on your own label set with the conll:DIR task"

    def example(self, words: list[str], tags: list[str], where: str | list[str]) -> dict:
        """`where` names the record ("file, record N") or each token's line ("file:line")."""
        if len(words) != len(tags):
            raise DataError(f"{where}: {len(words)} tokens but {len(tags)} tags; give one tag per token")
        if not words:
            raise DataError(f"{where}: a sentence without tokens; remove it")
        ids = []
        for i, tag in enumerate(tags):
            bio = to_bio(tag)
            if bio not in self.labels:
                at = where[i] if isinstance(where, list) else f"{where}, token {i}"
                raise DataError(
                    f"{at}: tag {clip(tag)} is not in the label set of {self.name} ({', '.join(self.labels)}); "
                    + self.unknown_tag_fix()
                )
            ids.append(self.labels.index(bio))
        return {"tokens": list(words), "tags": ids}


_CONLL04_HINT = "CoNLL04 files are JSON lists of {tokens, tags, relations} (the SpERT/TablERT release)"


@dataclass(frozen=True)
class Conll04(NerTask):
    name: str = "conll04"
    labels: tuple[str, ...] = bio_labels(("Loc", "Org", "Peop", "Other"))  # order of conll04_types.json

    def local_path(self, data_dir: Path, split: str) -> Path:
        return data_dir / "ner" / "conll04" / f"conll04_{split}.json"

    def read_local(self, path: Path) -> list[dict]:
        text = read_text(path)
        try:
            records = json.loads(text)
        except (ValueError, RecursionError) as e:
            what = "the file is empty" if not text.strip() else f"not valid JSON ({str(e) or 'nested too deeply'})"
            raise DataError(f"{path}: {what}; {_CONLL04_HINT}") from e
        if not isinstance(records, list) or not records:
            raise DataError(f"{path}: expected a non-empty JSON list of records; {_CONLL04_HINT}")
        out = []
        for i, rec in enumerate(records):
            where = f"{path}, record {i}"
            missing = [k for k in ("tokens", "tags") if not isinstance(rec, dict) or k not in rec]
            if missing:
                raise DataError(f"{where}: missing key(s) {', '.join(map(repr, missing))}; {_CONLL04_HINT}")
            out.append(self.example(rec["tokens"], rec["tags"], where))
        return out

    def read_hub(self, split: str) -> list[dict]:
        raise DataError("conll04 has no hub copy here; put the SpERT/TablERT conll04_*.json files there")


_BTC_HINT = "BTC files are CoNLL: `token<TAB>tag` per line, a blank line between tweets"


@dataclass(frozen=True)
class Btc(NerTask):
    name: str = "btc"
    labels: tuple[str, ...] = bio_labels(("PER", "LOC", "ORG"))
    train_sections: tuple[str, ...] = ("a", "b", "e", "g", "h")
    test_section: str = "f"  # upstream's test split
    dev_size: int = 1000  # tweets carved from the training sections
    dev_seed: int = 0  # fixed so every run is scored on the same dev tweets

    def folder(self, data_dir: Path) -> Path:
        return data_dir / "ner" / "btc"

    def read_local(self, path: Path) -> list[dict]:
        return [self.example(w, t, [f"{path}:{n}" for n in lines]) for lines, w, t in read_conll(path, _BTC_HINT)]

    def load(self, split: str, data_dir: Path | None) -> list[dict]:
        if split not in self.splits:
            raise DataError(f"task {self.name}: no split {split!r}; it has {', '.join(self.splits)}")
        if data_dir is None:
            raise DataError("task btc: no data directory is set (--data-dir / LNTUNE_DATA_DIR); "
                            "it reads ner/btc/{a,b,e,f,g,h}.conll from there")
        folder = self.folder(data_dir)
        if split == "test":
            return self.read_local(folder / f"{self.test_section}.conll")
        rows = [r for s in self.train_sections for r in self.read_local(folder / f"{s}.conll")]
        dev = set(random.Random(self.dev_seed).sample(range(len(rows)), min(self.dev_size, len(rows) // 2)))
        return [r for i, r in enumerate(rows) if (i in dev) == (split == "dev")]


_CONLL_HINT = ("write conll:DIR (with DIR/train.conll, DIR/dev.conll[, DIR/test.conll]) or "
               "conll:train=PATH,dev=PATH; add ,encoding=ENC for files not in UTF-8")
_SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class ConllTask(NerTask):
    """Users' own CoNLL files; the label set is the training file's entity types, sorted."""

    usage: ClassVar[str] = "conll:DIR (DIR/train.conll, DIR/dev.conll[, DIR/test.conll]) or conll:train=PATH,dev=PATH[,encoding=ENC]"  # how the spec is written (lntune tasks)

    files: tuple[tuple[str, str], ...] = ()  # (split, path)
    encoding: str = "utf-8"

    @classmethod
    def from_spec(cls, spec: str) -> "ConllTask":
        # conll:DIR, conll:train=PATH,dev=PATH, either with ,encoding=ENC; a folder is read whole when
        # the spec has no "=", so folder names may hold commas
        parts = spec.split(",") if "=" in spec else [spec]
        fields = dict(p.split("=", 1) for p in parts if "=" in p)
        folders = [p for p in parts if "=" not in p]
        splits = set(fields) & set(_SPLITS)
        if set(fields) - {*_SPLITS, "encoding"} or len(folders) > 1 or bool(folders) == bool(splits) \
                or (splits and "train" not in splits):
            raise DataError(f"task 'conll:{spec}': {_CONLL_HINT}")
        encoding = fields.get("encoding", "utf-8")
        codec_for(encoding, f"task 'conll:{spec}'")
        if folders:
            folder = Path(folders[0])
            if not (folder / "train.conll").exists():
                raise DataError(f"task 'conll:{spec}': {folder / 'train.conll'} not found; {_CONLL_HINT}")
            files = tuple((s, str(folder / f"{s}.conll")) for s in _SPLITS if (folder / f"{s}.conll").exists())
        else:
            files = tuple((s, fields[s]) for s in _SPLITS if s in fields)
        task = cls(name=f"conll:{spec}", splits=tuple(s for s, _ in files), files=files, encoding=encoding)
        return cls(name=task.name, labels=task.infer_labels(), splits=task.splits, files=files, encoding=encoding)

    def sentences(self, path: Path) -> list[tuple[list[int], list[str], list[str]]]:
        return read_conll(path, _CONLL_HINT, self.encoding, spec_encoding_fix(self.name))

    def infer_labels(self) -> tuple[str, ...]:
        """The training file's entity types as BIO labels; a file with no entities has nothing to learn."""
        path, types = Path(dict(self.files)["train"]), set()
        for lines, _, tags in self.sentences(path):
            for line, tag in zip(lines, tags):
                bio = to_bio(tag)
                if bio is None:
                    raise DataError(
                        f"{path}:{line}: tag {clip(tag)} is not BIO "
                        "(O, B-TYPE, I-TYPE; BILOU/IOBES are read as BIO); fix the tag"
                    )
                if bio != "O":
                    types.add(bio[2:])
        if not types:
            raise DataError(f"nothing to learn: every token of {path} is tagged O; "
                            "the training file needs entities tagged B-TYPE/I-TYPE")
        return bio_labels(tuple(sorted(types)))

    def local_path(self, data_dir, split: str) -> Path:
        return Path(dict(self.files)[split])

    def load(self, split: str, data_dir) -> list[dict]:
        if split not in self.splits:
            raise DataError(f"task {self.name}: no {split} file; add {split}.conll to the folder or {split}=PATH")
        return self.read_local(self.local_path(None, split))

    def read_local(self, path: Path) -> list[dict]:
        return [self.example(w, t, [f"{path}:{n}" for n in lines]) for lines, w, t in self.sentences(path)]

    def unknown_tag_fix(self) -> str:
        return (f"the label set comes from {dict(self.files)['train']}, so a tag it never uses cannot be "
                "learned: fix the tag, or add examples of it to the training file")
