"""Metrics of generated text against one or more references per input.

Scales: BLEU, TER, METEOR and ROUGE are percentages (0-100; sacrebleu's own scale for BLEU and TER);
NIST and CIDEr are on their usual open scales (NIST ~ 0-10+, CIDEr ~ 0-10).

  bleu     sacrebleu corpus BLEU (13a tokenizer, case-sensitive), all references of an input
  ter      sacrebleu corpus TER, the closest reference of each input
  nist     nltk corpus NIST (n=5) on 13a tokens
  meteor   nltk METEOR (exact, stem and WordNet synonym matches) per input, best reference, averaged;
           needs WordNet: nltk's data, or Debian's wordnet-base + wordnet-sense-index files (setup.sh installs
           them where apt-get can); without either, null, and `unavailable` says why
  rouge_l, rouge1, rouge2   rouge-score F1 with Porter stemming, best reference per input, averaged
  cider    CIDEr-D as coco-caption computes it (the E2E scripts use that code), written out here

These follow the official scripts' definitions, not their exact tokenisation (the E2E and DART
scripts call Perl and Java tools), so numbers are close to, not identical with, published tables.
"""
from __future__ import annotations

from lntune.spec.metrics import NLG_METRICS
import math
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence
from lntune.model.load import cache_dir

ALL = NLG_METRICS  # the names, defined in lntune.spec.metrics


class Unavailable(Exception):
    """A metric cannot run here; the message says why and how to make it available."""


def score(hyps: Sequence[str], refs: Sequence[Sequence[str]], metrics: Sequence[str] = ALL) -> dict:
    """{metric: value} for each requested metric; a metric that cannot run is null and explained
    under "unavailable" (never dropped or approximated)."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference lists")
    if not hyps or any(not r for r in refs):
        raise ValueError("every input needs at least one reference")
    unknown = [m for m in metrics if m not in _METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(ALL)}")
    out: dict = {}
    unavailable: dict[str, str] = {}
    for m in metrics:
        try:
            out[m] = float(_METRICS[m](list(hyps), [list(r) for r in refs]))
        except Unavailable as e:
            out[m], unavailable[m] = None, str(e)
    if unavailable:
        out["unavailable"] = unavailable
    return out


def _streams(refs: list[list[str]]) -> list[list[str | None]]:
    # sacrebleu takes reference streams; None pads inputs that have fewer references.
    width = max(len(r) for r in refs)
    return [[r[i] if i < len(r) else None for r in refs] for i in range(width)]


def bleu(hyps: list[str], refs: list[list[str]]) -> float:
    from sacrebleu.metrics import BLEU

    return BLEU().corpus_score(hyps, _streams(refs)).score


def ter(hyps: list[str], refs: list[list[str]]) -> float:
    from sacrebleu.metrics import TER

    return TER().corpus_score(hyps, _streams(refs)).score


@lru_cache(maxsize=1)
def _tokenizer_13a() -> Callable[[str], str]:
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def tokens(text: str) -> list[str]:
    """mteval-v13a tokens, the tokenisation of BLEU and NIST in the official scripts."""
    return _tokenizer_13a()(text.strip()).split()


def nist(hyps: list[str], refs: list[list[str]], n: int = 5) -> float:
    from nltk.translate.nist_score import corpus_nist

    hyp_tokens = [tokens(h) for h in hyps]
    if not any(hyp_tokens):
        return 0.0  # nltk divides by the hypothesis length
    return corpus_nist([[tokens(r) for r in rs] for rs in refs], hyp_tokens, n=n)


def wordnet():
    """nltk's WordNet reader: nltk's own data, else Debian's wordnet-base files; Unavailable without either."""
    import nltk

    for name in ("corpora/wordnet.zip", "corpora/wordnet"):
        try:
            nltk.data.find(name)
            break
        except LookupError:
            continue
    else:
        if not _debian_wordnet(DEBIAN_WORDNET):
            raise Unavailable(
                "WordNet data not installed: python -m nltk.downloader wordnet (needs network once), "
                "or on Debian/Ubuntu: apt-get install wordnet-base wordnet-sense-index"
            )
    from nltk.corpus import wordnet as wn

    return wn


DEBIAN_WORDNET = Path("/usr/share/wordnet")  # apt-get install wordnet-base wordnet-sense-index: WordNet 3.0
# NLTK's reader also opens `lexnames`, which wordnet-base leaves out. Its content is fixed by the WordNet 3.0
# spec (lexnames(5WN)): the 45 lexicographer files, numbered in this order, with their syntactic category.
LEXNAMES = ("adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
            "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
            "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
            "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
            "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
            "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather "
            "adj.ppl").split()
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def _debian_wordnet(source: Path) -> bool:
    """Make SOURCE (Debian's layout) readable by nltk: a corpora/wordnet folder of its files in lntune's cache, plus
    `lexnames`, on nltk's data path (nltk reads corpora only from there). False when SOURCE has no database."""
    import os
    import shutil

    import nltk

    if not all((source / f).is_file() for f in ("data.noun", "index.sense")):  # index.sense: wordnet-sense-index
        return False
    root = cache_dir() / "nltk_data"
    folder = root / "corpora" / "wordnet"
    folder.mkdir(parents=True, exist_ok=True)
    for f in source.iterdir():
        link = folder / f.name
        if f.is_file() and not link.exists():
            # a copy (about 30 MB, once): nltk refuses symlinks out of its data path and multiply-linked files
            tmp = link.with_suffix(link.suffix + ".part")
            shutil.copyfile(f, tmp)
            os.replace(tmp, link)  # a copy cut short is never taken for the file
    lexnames = "".join(f"{i:02d}\t{n}\t{_CATEGORY[n.split('.')[0]]}\n" for i, n in enumerate(LEXNAMES))
    if not (folder / "lexnames").exists():
        (folder / "lexnames.part").write_text(lexnames)
        os.replace(folder / "lexnames.part", folder / "lexnames")
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))
    return True


def meteor(hyps: list[str], refs: list[list[str]], wordnet_reader=None) -> float:
    from nltk.translate.meteor_score import meteor_score

    wn = wordnet_reader if wordnet_reader is not None else wordnet()
    scores = [meteor_score([r.split() for r in rs], h.split(), wordnet=wn) for h, rs in zip(hyps, refs)]
    return 100 * sum(scores) / len(scores)


@lru_cache(maxsize=4)
def _rouge_scorer(kind: str):
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer([kind], use_stemmer=True)


def _rouge(kind: str) -> Callable[[list[str], list[list[str]]], float]:
    def metric(hyps: list[str], refs: list[list[str]]) -> float:
        scorer = _rouge_scorer(kind)
        # score_multi keeps the reference with the best F1, as multi-reference ROUGE does
        f = [scorer.score_multi(rs, h)[kind].fmeasure for h, rs in zip(hyps, refs)]
        return 100 * sum(f) / len(f)

    return metric


# ---- CIDEr-D ------------------------------------------------------------------------------------
# coco-caption's cider_scorer.py (Vedantam et al. 2015), which the E2E scripts vendor: tf-idf n-gram
# vectors (n = 1..4) with document frequencies over the evaluated set's references, clipped cosine
# similarity, a Gaussian length penalty (sigma 6), averaged over references and scaled by 10.


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i : i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


def _cider_words(text: str) -> list[str]:
    # coco-caption's PTB tokenizer lower-cases and drops punctuation before scoring
    return [t for t in tokens(text.lower()) if any(c.isalnum() for c in t)]


def cider(hyps: list[str], refs: list[list[str]], n: int = 4, sigma: float = 6.0) -> float:
    hyp_counts = [_ngrams(_cider_words(h), n) for h in hyps]
    ref_counts = [[_ngrams(_cider_words(r), n) for r in rs] for rs in refs]
    df: Counter = Counter()
    for rs in ref_counts:
        df.update(set().union(*rs))
    log_items = math.log(len(refs))

    def vector(counts: Counter):
        vec = [defaultdict(float) for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for gram, tf in counts.items():
            k = len(gram) - 1
            vec[k][gram] = tf * (log_items - math.log(max(1.0, df[gram])))
            norm[k] += vec[k][gram] ** 2
            if k == 1:  # coco-caption measures length in bigrams; kept for comparable numbers
                length += tf
        return vec, [math.sqrt(x) for x in norm], length

    def similarity(h, r) -> list[float]:
        (vh, nh, lh), (vr, nr, lr) = h, r
        penalty = math.exp(-((lh - lr) ** 2) / (2 * sigma**2))
        out = []
        for k in range(n):
            val = sum(min(w, vr[k][g]) * vr[k][g] for g, w in vh[k].items())
            if nh[k] != 0 and nr[k] != 0:
                val /= nh[k] * nr[k]
            out.append(val * penalty)
        return out

    total = 0.0
    for hc, rcs in zip(hyp_counts, ref_counts):
        h = vector(hc)
        per_n = [0.0] * n
        for rc in rcs:
            per_n = [a + b for a, b in zip(per_n, similarity(h, vector(rc)))]
        total += 10.0 * (sum(per_n) / n) / len(rcs)
    return total / len(hyps)


_METRICS: dict[str, Callable[[list[str], list[list[str]]], float]] = {
    "bleu": bleu,
    "nist": nist,
    "meteor": meteor,
    "rouge_l": _rouge("rougeL"),
    "rouge1": _rouge("rouge1"),
    "rouge2": _rouge("rouge2"),
    "cider": cider,
    "ter": ter,
}
