"""The methods the founding papers' tables and claims compare, named by the role they play there.

The report rebuilds paper 000's and 002's tables (LN beside BitFit, full fine-tuning as the 100 of relative
times, X beside X+LN, LN's ablations, a random subset of as many weights): those tables are about these
methods, so the report names them, but only through this module, so that no module outside method/ spells a
method's name. A new method needs nothing here; it joins the tables through its traits (method/base.Method).
"""
from __future__ import annotations

from dataclasses import fields

from lntune.method.bitfit import BitFit
from lntune.method.full import FullFineTuning
from lntune.method.ln import LNConfig, LNTuning
from lntune.method.mam import MAM as _MAM
from lntune.method.prefix import PrefixTuning
from lntune.method.random_subset import RandomSubset

LN = LNTuning.name  # LN-tuning: the subject of both papers, and the +LN of 000's unified X+LN
BITFIT = BitFit.name  # 000 table 1, 002 table 2: its nearest rival in size
FULL = FullFineTuning.name  # the reference of relative training and inference time (FT = 100)
RANDOM = RandomSubset.name  # 002 table 2: a random subset of as many weights as LN
PREFIX = PrefixTuning.name  # 000 table 3 (Prefix+LN) and fig. 2 (time beside the adapters)
MAM = _MAM.name  # 000 sec. 4.3: the slowest to train

SUBSET = (FULL, BITFIT, LN)  # 002 table 2's rows besides the random subset
KRUSKAL = (("LN vs BitFit", (LN, BITFIT)), ("LN vs random", (LN, RANDOM)),  # 002's Kruskal-Wallis tests
           ("LN vs BitFit vs random", (LN, BITFIT, RANDOM)))


def has_ln(method: str) -> bool:
    """LN-tuning alone or as a part of a composite ("prefix+ln")."""
    return LN in method.split("+")


def is_ln_combo(method: str) -> bool:
    """An X+LN composite of 000's unified framework."""
    return has_ln(method) and len(method.split("+")) > 1


def base_method(method: str) -> str:
    """The X of an X+LN composite."""
    return "+".join(p for p in method.split("+") if p != LN)


def ln_options(options: dict) -> dict:
    """LN's own options, from a lone method's options or a composite's {part: options}."""
    return options.get(LN, options) if isinstance(options.get(LN), dict) else options


def ln_defaults() -> dict:
    """LN-tuning's default options: the full LN row of 000 table 4, which its ablations depart from."""
    return {f.name: f.default for f in fields(LNConfig)}
