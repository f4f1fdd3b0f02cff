"""A second view of a text dataset for the foreign-cluster search: how the texts are written.

A sentence embedding (all-MiniLM-L6-v2 and its kind) places a text by what it is *about*. A block of
foreign texts on the same topic as the rest (plot synopses among movie reviews, titles among
reviews) lands inside the topic's region of the embedding graph, mixed with the genuine texts, so
no region of that graph is cut off and the foreign-cluster test of :mod:`dqwidgets.compute.foreign`
has nothing to find (bench_quality's Rotten Tomatoes case: 0 of 156 synopses flagged on the
embedding graph alone, OOD AUROC 0.75).

Such texts differ in *form*: their length, sentence structure, word length, capitalisation, digits,
punctuation and pronouns (the surface statistics of stylometry; Stamatatos, "A survey of modern
authorship attribution methods", JASIST 60(3), 2009). :func:`surface_properties` computes
``SURFACE_PROPERTIES`` per text, :func:`standardised` puts them on one robust scale (median / MAD),
and :func:`surface_graph` builds the Euclidean kNN graph of those standardised statistics.
:func:`surface_foreign_probability` runs the foreign-cluster test on that graph with the same
labels and out-of-fold probe: a block of texts written alike, cut off from the rest, whose labels
the probe cannot read, is foreign. It runs on ``VIEWS`` dequantised draws of the lengths, and a text
gets its mean probability over the draws only where every draw finds it, 0 otherwise (stability
selection; Meinshausen & Buehlmann, JRSS B 72(4), 2010): short in-distribution sentences whose labels
no model reads (a 6-word debate sentence's party) sit at the edge of the length distribution and
form a cut-off-looking region in some draws, not in all. No threshold here is set per dataset.

Measured on texts the rule was not built on (bench/results/bench_foreign_texts.md: debate sentences
and reviews, clean and with blocks of synopses, titles, headlines, Hamlet's lines, reviews): no text
of the clean corpora flagged; synopses and titles found; headlines and Hamlet's lines are not
caught by this view (where they are caught, the embedding graph catches them).
"""

from __future__ import annotations

import re

import numpy as np

SURFACE_PROPERTIES = ["log_chars", "log_words", "log_sentences", "words_per_sentence", "letters_per_word",
                      "capitalised_share", "digit_share", "punctuation_share", "non_ascii_share",
                      "personal_pronoun_share"]

_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
# first- and second-person pronouns and determiners: opinion and dialogue vs third-person narration
_PRONOUNS = frozenset("i me my mine myself we us our ours ourselves you your yours yourself yourselves".split())
_CLIP = 8.0  # standardised values are clipped here: one extreme text does not own a dimension


_COUNTS = ["chars", "words", "sentences", "letters", "capitalised", "digits", "punctuation", "visible",
           "non_ascii", "pronouns"]
_LENGTHS = 3  # the first three counts (chars, words, sentences) are dequantised
VIEWS = 3  # dequantised views the surface search runs on; a text counts where every view finds it


def surface_counts(texts) -> np.ndarray:
    """The counts the surface statistics are made of, per text (N x len(``_COUNTS``), float64); a
    missing or empty text gets zeros."""
    out = np.zeros((len(texts), len(_COUNTS)), dtype=np.float64)
    for i, t in enumerate(texts):
        if isinstance(t, str) and t.strip():
            out[i] = _count(t)
    return out


def _count(t: str) -> list:
    words = _WORD.findall(t)
    stripped = t.strip()
    sentences = len(_SENTENCE_END.findall(stripped))
    if not _SENTENCE_END.search(stripped[-1:] + " "):  # a last sentence without a full stop counts too
        sentences += 1
    visible = len(t) - sum(map(str.isspace, t))  # character classes counted by str's C methods
    letters = sum(map(str.isalpha, t))
    digits = sum(map(str.isdigit, t))
    non_ascii = len(t) - len(t.encode("ascii", "ignore"))
    return [len(t), len(words), max(sentences, 1), letters, sum(w[:1].isupper() for w in words), digits,
            visible - letters - digits, visible, non_ascii, sum(w.lower() in _PRONOUNS for w in words)]


def surface_properties(texts=None, counts=None, seed: int | None = None) -> np.ndarray:
    """``SURFACE_PROPERTIES`` of each text (N x 10, float32) from its counts (``surface_counts``).
    ``seed``: dequantise the lengths first, i.e. add uniform noise of one count's width to the counts
    of characters, words and sentences (Theis, van den Oord & Bethge, "A note on the evaluation of
    generative models", ICLR 2016): short texts take few length values, and hundreds of 6-word
    sentences would otherwise be each other's exact neighbours, a block that looks cut off from the
    graph only because lengths are whole numbers. The shares are not dequantised: noise of one count
    over a 2-word title would drown what marks it (every word capitalised)."""
    C = surface_counts(texts) if counts is None else np.asarray(counts, dtype=np.float64)
    empty = C[:, 0] == 0
    if seed is not None:
        C = C.copy()
        C[:, :_LENGTHS] = np.maximum(C[:, :_LENGTHS] + np.random.default_rng(seed).uniform(
            -0.5, 0.5, (len(C), _LENGTHS)), 0.0)
    chars, words, sentences, letters, capitalised, digits, punct, visible, non_ascii, pronouns = C.T
    w, v, sent = np.maximum(words, 1.0), np.maximum(visible, 1.0), np.maximum(sentences, 1.0)
    P = np.c_[np.log1p(chars), np.log1p(words), np.log1p(sent), words / sent, letters / w, capitalised / w,
              digits / v, punct / v, non_ascii / np.maximum(chars, 1.0), pronouns / w]
    P[empty] = 0.0
    return P.astype(np.float32)


def standardised(properties: np.ndarray) -> np.ndarray:
    """Each column centred on its median and divided by 1.4826 x its MAD (its standard deviation
    where the MAD is 0; a constant column becomes 0), clipped to +-``_CLIP``."""
    P = np.asarray(properties, dtype=np.float64)
    med = np.median(P, axis=0)
    spread = 1.4826 * np.median(np.abs(P - med), axis=0)
    std = P.std(axis=0)
    spread = np.where(spread > 1e-9, spread, std)
    Z = np.where(spread > 1e-9, (P - med) / np.where(spread > 1e-9, spread, 1.0), 0.0)
    return np.clip(Z, -_CLIP, _CLIP).astype(np.float32)


def surface_graph(counts: np.ndarray, k: int = 15, device="auto", seed: int = 0):
    """The Euclidean kNN graph (:class:`dqwidgets.compute.knn.KnnGraph`) of the standardised surface
    statistics of texts given by their ``surface_counts`` (dequantised with ``seed``); None when
    there are too few rows for ``k`` neighbours. Exact or IVF as
    :func:`dqwidgets.compute.knn.knn_graph` picks by size (10 dimensions: cheap either way)."""
    from dqwidgets.compute.knn import knn_graph

    if len(counts) <= k:
        return None
    Z = standardised(surface_properties(counts=counts, seed=seed))
    return knn_graph(Z, k=k, metric="euclidean", device=device, seed=seed)


def surface_foreign_probability(counts: np.ndarray, codes: np.ndarray, probs: np.ndarray, k: int = 15,
                                device="auto", seed: int = 0) -> np.ndarray | None:
    """Each text's P(foreign) on the surface view (float64 N): the mean over ``VIEWS`` dequantised
    surface graphs (seeds ``seed`` ... ``seed + VIEWS - 1``) of :func:`dqwidgets.compute.foreign.
    find_foreign_clusters`' probability where every view gives it one, 0 where any view gives 0
    (the stability gate of the module docstring; the mean, not the minimum, is the estimate, so the
    flags' estimated precision is not biased low); None when there are too few texts for ``k``
    neighbours."""
    from dqwidgets.compute.foreign import find_foreign_clusters

    total, found = None, None
    for s in range(seed, seed + VIEWS):
        g = surface_graph(counts, k=k, device=device, seed=s)
        if g is None:
            return None
        p = find_foreign_clusters(g.indices, codes, probs, seed=s).probability
        total = p if total is None else total + p
        found = p > 0 if found is None else found & (p > 0)
        if not found.any():  # no text found in every view so far: all stay 0
            return np.zeros(len(p))
    return np.where(found, total / VIEWS, 0.0)
