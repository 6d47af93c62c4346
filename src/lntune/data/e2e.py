"""E2E NLG: meaning representation -> restaurant description, for decoders.

Upstream's trainset.csv is not available offline, so, as the data README says,
training uses devset.csv and evaluation testset_w_refs.csv.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lntune.data.files import read_rows
from lntune.data.nlg import NLGTask

_FILES = {"train": "devset.csv", "dev": "testset_w_refs.csv"}
_HUB_SPLIT = {"train": "train", "dev": "test"}


def prompt(mr: str) -> str:
    return f"Table: {mr}\nText:"


@dataclass(frozen=True)
class E2E(NLGTask):
    name: str = "e2e"
    max_new_tokens: int = 35

    def local_path(self, data_dir: Path, split: str) -> Path:
        return data_dir / "nlg" / "e2e" / _FILES[split]

    def read_local(self, path: Path) -> list[dict]:
        rows = read_rows(path, ("mr", "ref"), delimiter=",", hint="E2E files are CSV with columns mr,ref")
        return [{"prompt": prompt(r["mr"]), "target": " " + r["ref"]} for _, r in rows]

    @property
    def hub_dataset(self) -> tuple[str, ...]:
        return ('GEM/e2e_nlg',)

    def read_hub(self, split: str) -> list[dict]:
        import datasets

        rows = datasets.load_dataset(*self.hub_dataset, split=_HUB_SPLIT[split])
        return [{"prompt": prompt(r["meaning_representation"]), "target": " " + r["target"]} for r in rows]
