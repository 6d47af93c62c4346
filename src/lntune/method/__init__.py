"""Method registry: a new method is one module plus one line here."""
from __future__ import annotations

from lntune.errors import MethodError
from lntune.method.adapter import ParAdapterFFN, SeqAdapterFFN, SeqAdapterMHA
from lntune.method.base import Method, Tuned
from lntune.method.bitfit import BitFit
from lntune.method.compose import Composite
from lntune.method.full import FullFineTuning
from lntune.method.head import HeadOnly
from lntune.method.ln import LNTuning
from lntune.method.lora import LoRA
from lntune.method.mam import MAM
from lntune.method.prefix import PrefixTuning
from lntune.method.random_subset import RandomSubset
from lntune.method.threev import ThreeV
from lntune.method.tuning import Tuning, prepare

class MethodRegistry(dict):
    """The registered tuning methods by name (a dict of name -> Method class); `build_method` builds one.

    >>> from lntune import METHODS
    >>> sorted(METHODS)[:4]
    ['3v', 'bitfit', 'full', 'head']
    >>> METHODS["ln"].Config().terms
    'both'
    """


# One line per method, in the order the report's tables list them (paper 000's: full FT, adapters, ..., LN).
METHODS: dict[str, type[Method]] = MethodRegistry({
    FullFineTuning.name: FullFineTuning,
    ParAdapterFFN.name: ParAdapterFFN,
    SeqAdapterFFN.name: SeqAdapterFFN,
    SeqAdapterMHA.name: SeqAdapterMHA,
    LoRA.name: LoRA,
    PrefixTuning.name: PrefixTuning,
    MAM.name: MAM,
    ThreeV.name: ThreeV,
    BitFit.name: BitFit,
    LNTuning.name: LNTuning,
    RandomSubset.name: RandomSubset,
    HeadOnly.name: HeadOnly,
})


def parts(method: str) -> list[type[Method]]:
    """The registered classes of a method name or a composite ("prefix+ln"), in order.

    >>> [m.name for m in parts("prefix+ln")]
    ['prefix', 'ln']
    """
    out = []
    for p in method.split("+"):
        if p not in METHODS:
            raise MethodError(f"unknown method {p!r}: choose one of {', '.join(sorted(METHODS))}, or join them with +")
        out.append(METHODS[p])
    return out


def order(method: str) -> int:
    """The position of a method's first part in the registry: the report's row order."""
    first = method.split("+")[0]
    return list(METHODS).index(first) if first in METHODS else len(METHODS)


def build_method(name: str, **options) -> Method:
    """`name` is a registered method or parts joined by '+'; a composite takes {part: options}.

    >>> from lntune import build_method
    >>> build_method("ln", terms="gain", modules="ffn").options()["terms"]
    'gain'
    >>> type(build_method("prefix+ln", prefix={"length": 8})).__name__
    'Composite'
    """
    if "+" in name:
        parts = name.split("+")
        unknown = set(options) - set(parts)
        if unknown:
            raise MethodError(f"method {name}: options for {sorted(unknown)}, which is not a part")
        return Composite([build_method(p, **options.get(p, {})) for p in parts])
    if name not in METHODS:
        raise MethodError(f"unknown method {name!r}: choose one of {', '.join(sorted(METHODS))}, or join them with +")
    try:
        return METHODS[name](**options)
    except TypeError as e:  # an option the config dataclass does not have
        fields = ", ".join(METHODS[name].Config.__dataclass_fields__) or "none"
        raise MethodError(f"method {name}: {e}; its options are: {fields}") from e


__all__ = ["METHODS", "Method", "Tuned", "Tuning", "build_method", "order", "parts", "prepare"]
