"""Generation metrics against hand-computed values or the reference libraries on the same strings."""
import math

import pytest
import sacrebleu

from lntune.evaluate import nlg_metrics as M

HYPS = ["the cat sat on the mat", "a dog barked loudly at night"]
REFS = [["the cat sat on the mat .", "a cat was sitting on the mat"], ["the dog barked at night"]]


def test_bleu_and_ter_are_sacrebleu_with_variable_reference_counts():
    streams = [[REFS[0][0], REFS[1][0]], [REFS[0][1], None]]
    assert M.bleu(HYPS, REFS) == pytest.approx(sacrebleu.corpus_bleu(HYPS, streams).score)
    assert M.ter(HYPS, REFS) == pytest.approx(sacrebleu.corpus_ter(HYPS, streams).score)
    # a second reference can only help: BLEU with both >= BLEU with the first alone
    assert M.bleu(HYPS, REFS) >= M.bleu(HYPS, [[r[0]] for r in REFS])
    assert M.bleu(["a b c d e"], [["a b c d e"]]) == pytest.approx(100.0)
    assert M.ter(["a b c d"], [["a b x d"]]) == pytest.approx(25.0)  # one substitution in four words


def test_rouge_l_by_hand():
    # LCS("a b c d", "a c b d") = 3 ("a b d"): P = R = 3/4, F1 = 0.75
    assert M.score(["a b c d"], [["a c b d"]], ["rouge_l"])["rouge_l"] == pytest.approx(75.0)
    # multi-reference: the best reference counts (here the exact one)
    assert M.score(["a b c d"], [["a c b d", "a b c d"]], ["rouge_l"])["rouge_l"] == pytest.approx(100.0)
    # ROUGE-1: 2 of 3 unigrams shared: P = R = 2/3; ROUGE-2: bigram "a b" of 2: 1/2
    out = M.score(["a b c"], [["a b d"]], ["rouge1", "rouge2"])
    assert out["rouge1"] == pytest.approx(200 / 3) and out["rouge2"] == pytest.approx(50.0)


def test_cider_d_by_hand():
    # Two inputs: every n-gram occurs in one input's references only, so idf = log(2) throughout.
    # 1) "a b" vs "a b": cosine 1 for 1- and 2-grams, no 3-/4-grams: mean(1, 1, 0, 0) * 10 = 5
    # 2) "c d" vs "c e": unigram cosine (w*w)/(sqrt(2)w * sqrt(2)w) = 1/2, nothing else: 10 * 0.5/4 = 1.25
    assert M.cider(["a b", "c d"], [["a b"], ["c e"]]) == pytest.approx((5 + 1.25) / 2)
    # averaged over references: a second, disjoint reference halves input 1's share
    assert M.cider(["a b", "c d"], [["a b", "x y"], ["c e"]]) == pytest.approx((5 / 2 + 1.25) / 2)
    # length penalty: bigram counts 1 vs 3 differ by 2 -> exp(-4 / 72)
    got = M.cider(["a b", "z"], [["a b c d"], ["q"]])
    w = math.log(2)
    uni = (2 * w * w) / (math.sqrt(2) * w * math.sqrt(4) * w)
    bi = (w * w) / (w * math.sqrt(3) * w)
    assert got == pytest.approx((10 * (uni + bi) / 4 * math.exp(-4 / 72) + 0) / 2)


def test_nist_is_nltk_on_13a_tokens():
    from nltk.translate.nist_score import corpus_nist

    want = corpus_nist([[r.split() for r in rs] for rs in REFS], [h.split() for h in HYPS], n=5)
    hyps = [h.replace(" .", ".") for h in HYPS]
    assert M.nist(hyps, [[r.replace(" .", ".") for r in rs] for rs in REFS]) == pytest.approx(want)
    assert M.nist([""], [["a b"]]) == 0.0


class NoSynonyms:
    """A WordNet stand-in without synonyms: METEOR falls back to exact and stem matches."""

    def synsets(self, word, *a, **k):
        return []


def test_meteor_by_hand_without_synonyms():
    # exact copy of 3 words: P = R = 1, one chunk: penalty 0.5 * (1/3)^3, score 1 - 1/54
    assert M.meteor(["the cat sat"], [["the cat sat"]], NoSynonyms()) == pytest.approx(100 * (1 - 1 / 54))


def test_meteor_without_wordnet_says_why(monkeypatch):
    def missing():
        raise M.Unavailable("WordNet data not installed: python -m nltk.downloader wordnet")

    monkeypatch.setattr(M, "wordnet", missing)
    out = M.score(HYPS, REFS, ["bleu", "meteor"])
    assert out["meteor"] is None and out["bleu"] > 0
    assert out["unavailable"] == {"meteor": "WordNet data not installed: python -m nltk.downloader wordnet"}


def test_bad_input():
    with pytest.raises(ValueError, match="2 hypotheses but 1"):
        M.score(HYPS, REFS[:1])
    with pytest.raises(ValueError, match="unknown metric"):
        M.score(HYPS, REFS, ["bleurt"])


def test_meteor_from_debian_wordnet_files_counts_synonyms(tmp_path, monkeypatch):
    """Debian's wordnet-base files (as setup.sh installs them), made readable by nltk: METEOR matches
    synonyms (hound/dog, quickly/fast) that exact and stem matching miss. Without the files the reason says how
    to get them, naming both routes."""
    monkeypatch.setenv("LNTUNE_CACHE", str(tmp_path))
    if not M._debian_wordnet(M.DEBIAN_WORDNET):
        monkeypatch.setattr(M, "_debian_wordnet", lambda source: False)
        import nltk

        monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nothing")])
        with pytest.raises(M.Unavailable, match="nltk.downloader wordnet .* apt-get install wordnet-base"):
            M.wordnet()
        return
    assert (tmp_path / "nltk_data" / "corpora" / "wordnet" / "lexnames").read_text().count("\n") == 45
    wn = M.wordnet()
    assert wn.synsets("dog")[0].lexname() == "noun.animal"
    hyp, refs = ["the hound ran quickly"], [["the dog runs fast"]]
    assert M.meteor(hyp, refs, wn) > M.meteor(hyp, refs, NoSynonyms()) + 20


def test_debian_layout_without_the_sense_index_is_not_taken(tmp_path):
    (tmp_path / "data.noun").write_text("")
    assert M._debian_wordnet(tmp_path) is False
