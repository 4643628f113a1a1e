"""Hashtags to labels on real WordNet: normalization, merging, ambiguity, noise, vocabularies."""

from __future__ import annotations

from collections import Counter

import pytest

from datamodules.errors import UserInputError
from datamodules.hashtags import (
    Vocabulary,
    build_vocabulary,
    count_tag_categories,
    count_tags,
    explain,
    extract_hashtags,
    image_tags,
    label_all,
    label_stats,
    normalize,
    write_vocabulary,
    zipf_fit,
)
from datamodules.lexicon import get_lexicon, imagenet_lemmas, imagenet_synsets
from datamodules.wordnet import load_wordnet

BROWN_BEAR, BRUIN_TALES, TENCH = "n02132136", "n02132320", "n01440764"
CRANE_MACHINE, CRANE_WRITER = "n03126707", "n10914447"


def build(counts, num_images=100, **kw):
    kw = {"vocab": "in1k", "min_count": 1, **kw}
    return build_vocabulary(Counter(counts), num_images, **kw)


# ---- normalization and extraction ------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Ursus_arctos", "ursusarctos"),
        ("#UrsusArctos", "ursusarctos"),
        ("ursus arctos", "ursusarctos"),
        ("  #Brown-Bear  ", "brownbear"),
        ("＃Ｂｒｏｗｎ＿Ｂｅａｒ", "brownbear"),  # full-width forms (NFKC)
        ("St. Bernard's", "stbernards"),
        ("Rock ’n’ Roll", "rocknroll"),  # typographic apostrophes
        ("cafe\u0301", "café"),  # combining accent composes
        ("##tbt", "tbt"),
        ("#", ""),
        ("", ""),
    ],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected
    assert normalize(expected) == expected  # idempotent


def test_extract_hashtags_unicode_and_punctuation():
    caption = "Ein #Bär im #Café! #café, #naïve #日本 (#dog). #DOG #_ #ice-cream ＃Ｆｕｊｉ end#x"
    assert extract_hashtags(caption) == [
        "bär", "café", "naïve", "日本", "dog", "ice", "fuji", "x",
    ]  # fmt: skip
    assert extract_hashtags("no tags here") == []


def test_image_tags_merges_list_and_caption():
    assert image_tags(["Brown_bear", "#brownbear", ""], "with #Bruin and #brown_bear") == [
        "brownbear",
        "bruin",
    ]


def test_count_tags_counts_images_not_mentions():
    counts = count_tags([["Dog", "#dog", "cat"], ["dog"], []])
    assert counts == Counter({"dog": 2, "cat": 1})
    assert count_tags([["dog"]]) + count_tags([["dog", "cat"]]) == counts  # shards add up


# ---- the lexicon on real WordNet -------------------------------------------------------------
def test_in1k_lexicon_sizes_are_exact():
    stats = get_lexicon("in1k", "first_sense").stats()
    assert stats == {
        "synset_set": 1000,
        "hashtags_before_merge": 1804,
        "synsets_after_merge": 998,  # the second 'crane' and 'maillot' synsets lose their only tag
        "synsets_without_hashtag": 2,
        "ambiguous_hashtags": 505,
        "ambiguous_first_sense": 143,
        "ambiguous_later_sense": 362,
        "ambiguous_dropped": 0,
    }
    dropped = get_lexicon("in1k", "drop").stats()
    assert (dropped["hashtags_before_merge"], dropped["synsets_after_merge"]) == (1299, 805)
    assert dropped["ambiguous_dropped"] == 505


def test_timm_lemmas_are_wordnet_lemmas():
    wn = load_wordnet()
    ids = imagenet_synsets()
    assert len(ids) == 1000 and ids[0] == TENCH
    lemmas = imagenet_lemmas()
    assert all(
        {normalize(x) for x in lemmas[s]} == {normalize(x) for x in wn.lemmas(s)} for s in ids
    )


def test_in1k_vocabulary_covers_998_synsets_when_every_hashtag_is_seen():
    lexicon = get_lexicon("in1k")
    vocab, report = build({tag: 1 for tag in lexicon.resolved}, num_images=10_000)
    assert len(vocab) == 998
    assert report["merge"] == {
        "hashtags_before_merge": 1804,
        "labels_after_merge": 998,
        "hashtags_in_vocab_tsv": 1804,
    }
    assert len(set(vocab.hashtags)) == 998  # canonical hashtags are unique


# ---- merging ---------------------------------------------------------------------------------
def test_brown_bear_bruin_ursus_arctos_are_one_in1k_label():
    vocab, report = build(
        {"brownbear": 5, "bruin": 2, "ursusarctos": 1, "tench": 4, "tincatinca": 3}
    )
    assert vocab.hashtags == ["brownbear", "tench"]
    assert vocab.synsets == [BROWN_BEAR, TENCH]
    assert vocab.synonyms == [("brownbear", "bruin", "ursusarctos"), ("tench", "tincatinca")]
    assert vocab.counts == [8, 7]
    assert (
        vocab.label(["Brown_bear"])
        == vocab.label(["#Bruin"])
        == vocab.label(["Ursus arctos"])
        == [0]
    )
    assert vocab.label(["Tinca tinca", "#tench"]) == [1]
    # bruin's first WordNet sense is the storybook bear: resolved to a later sense, and counted
    assert report["ambiguity"]["resolved_to_later_sense"]["top"] == [["bruin", 2]]


def test_wordnet_vocabulary_follows_the_first_sense():
    vocab, _ = build({"brownbear": 5, "ursusarctos": 1, "bruin": 2}, vocab="wordnet")
    assert vocab.synsets == [BROWN_BEAR, BRUIN_TALES]
    assert vocab.hashtags == ["brownbear", "bruin"]
    assert vocab.counts == [6, 2]


@pytest.mark.parametrize(
    "vocab_name, rule, synset, status",
    [
        ("in1k", "first_sense", CRANE_MACHINE, "later_sense"),  # first sense inside the 1,000
        ("wordnet", "first_sense", CRANE_WRITER, "first_sense"),  # index.noun's first: the writer
        ("in1k", "drop", None, "ambiguous_dropped"),
        ("wordnet", "drop", None, "ambiguous_dropped"),
    ],
)
def test_crane_under_both_rules(vocab_name, rule, synset, status):
    info = explain("#Crane", vocab=vocab_name, ambiguity=rule)
    assert (info["synset"], info["status"], info["senses"]) == (synset, status, 5)
    counts = {"crane": 3, "tench": 2}
    vocab, report = build(counts, vocab=vocab_name, ambiguity=rule)
    if synset is None:
        assert vocab.synsets == [TENCH]
        assert report["ambiguity"]["dropped"] == {
            "hashtags": 1,
            "occurrences": 3,
            "top": [["crane", 3]],
        }
        assert vocab.label(["crane"]) == []
    else:
        assert vocab.synsets == [synset, TENCH]
        assert report["ambiguity"]["ambiguous_hashtags_in_corpus"] == 1


def test_explain_reasons():
    assert explain("qwzx")["status"] == "not_a_wordnet_noun"
    assert explain("dog", vocab="in1k")["status"] == "outside_vocabulary_synsets"
    assert explain("#love", stop_tags=["love"])["status"] == "stop_tag"
    info = explain("Tinca_tinca", vocab="in1k")
    assert (info["hashtag"], info["synset"], info["normalized"]) == ("tench", TENCH, "tincatinca")
    assert info["gloss"].startswith("freshwater dace-like game fish")


# ---- noise -----------------------------------------------------------------------------------
def test_stop_list_extra_stop_tags_and_max_tag_share_are_reported():
    counts = {"tench": 30, "photooftheday": 60, "animals": 10, "brownbear": 8, "love": 2}
    vocab, report = build(
        counts,
        num_images=100,
        stop_tags=["photooftheday", "#Love"],
        extra_stop_tags=["Animals"],
        max_tag_share=0.25,
    )
    assert vocab.hashtags == ["brownbear"]
    dropped = report["dropped"]
    assert dropped["stop_list"] == [["photooftheday", 60], ["animals", 10], ["love", 2]]
    assert dropped["max_tag_share"] == [["tench", 30]]
    assert vocab.label(["tench", "photooftheday"]) == []  # noise tags never come back


def test_a_stop_tag_is_not_a_synonym_and_not_a_canonical_name():
    # picture / image / icon / ikon share a WordNet synset; three are on the stop list
    vocab, _ = build(
        {"ikon": 5, "picture": 5}, vocab="wordnet", stop_tags=["picture", "image", "icon"]
    )
    assert (vocab.hashtags, vocab.synsets, vocab.synonyms) == (["ikon"], ["n03931044"], [("ikon",)])
    assert vocab.label(["picture"]) == []


def test_category_spread_drops_tags_spread_over_all_categories():
    tag_lists = [["dog", "tench"], ["dog"], ["dog"], ["dog", "tench"], ["brownbear"]]
    categories = ["a", "b", "c", "d", "d"]
    cats = count_tag_categories(tag_lists, categories)
    assert cats["dog"] == Counter({"a": 1, "b": 1, "c": 1, "d": 1})
    vocab, report = build(
        count_tags(tag_lists),
        num_images=5,
        vocab="wordnet",
        category_counts=cats,
        max_category_spread=0.9,
    )
    assert vocab.hashtags == ["tench", "brownbear"]
    assert report["dropped"]["category_spread"] == [["dog", 4, 1.0]]


# ---- filtering, ordering, raw ----------------------------------------------------------------
def test_min_count_top_k_and_tie_order():
    counts = {"tench": 5, "goldfish": 5, "brownbear": 9, "ostrich": 1, "tree frog": 2}
    vocab, report = build(counts, min_count=2, top_k=3)
    assert vocab.hashtags == ["brownbear", "goldfish", "tench"]  # by count, ties by name
    assert report["dropped"]["below_min_count"]["top"] == [["ostrich", 1]]
    assert report["dropped"]["beyond_top_k"]["top"] == [["treefrog", 2]]


def test_raw_vocabulary_does_not_merge():
    vocab, report = build({"BrownBear": 3, "ursus_arctos": 2, "qwzx": 1}, vocab="raw", top_k=2)
    assert vocab.hashtags == ["brownbear", "ursusarctos"]
    assert vocab.synsets == ["", ""]
    assert vocab.synonyms == [("brownbear",), ("ursusarctos",)]
    assert report["lexicon"] is None


def test_empty_vocabulary_is_a_clear_error():
    with pytest.raises(UserInputError, match="vocabulary is empty.*data.vocab.min_count"):
        build({"tench": 1, "qwzx": 5}, min_count=2)


def test_unknown_vocabulary_and_rule_are_clear_errors():
    with pytest.raises(UserInputError, match="unknown vocabulary.*in1k, wordnet, raw"):
        build({"tench": 1}, vocab="imagenet")
    with pytest.raises(UserInputError, match="unknown ambiguity rule.*first_sense, drop"):
        build({"tench": 1}, ambiguity="random")


# ---- labels, files, statistics ---------------------------------------------------------------
def test_label_and_label_all():
    vocab, _ = build({"brownbear": 5, "tench": 4})
    assert vocab.label(["tench", "Brown bear", "#TENCH", "qwzx", "bruin"]) == [0, 1]
    labels, unlabelled = label_all(vocab, [["tench"], ["qwzx"], [], ["bruin", "tench"]])
    assert (labels, unlabelled) == ([[1], [], [], [0, 1]], 2)
    assert vocab.id_of("Ursus_arctos") == 0 and vocab.id_of("dog") is None
    with pytest.raises(TypeError):
        vocab.label("tench")


def test_label_stats_histogram():
    stats = label_stats([[0], [], [0, 1], [2], [0, 1, 2]])
    assert stats == {
        "images": 5,
        "labelled": 4,
        "unlabelled": 1,
        "mean_labels": 1.75,
        "histogram": [1, 2, 1, 1],
    }


def test_zipf_fit_recovers_the_exponent():
    fit = zipf_fit([1e6 * r**-1.5 for r in range(1, 200)])
    assert fit["exponent"] == pytest.approx(1.5, abs=1e-6)
    assert fit["r2"] == pytest.approx(1.0, abs=1e-9)
    assert zipf_fit([5]) is None


def test_rebuilds_are_byte_identical_and_load_round_trips(tmp_path):
    counts = {"brownbear": 5, "bruin": 2, "tench": 5, "crane": 1, "qwzx": 3, "photooftheday": 9}
    reordered = dict(reversed(list(counts.items())))
    paths = []
    for name, c in (("a", counts), ("b", reordered)):
        vocab, report = build(c, num_images=20, stop_tags=["photooftheday"])
        paths.append(write_vocabulary(tmp_path / name, vocab, report))
    (tsv_a, json_a), (tsv_b, json_b) = paths
    assert tsv_a.read_bytes() == tsv_b.read_bytes()
    assert json_a.read_bytes() == json_b.read_bytes()
    assert tsv_a.read_text().splitlines()[:3] == [
        "id\thashtag\tsynset\tsynonyms\tcount",
        "0\tbrownbear\tn02132136\tbrownbear,bruin,ursusarctos\t7",
        "1\ttench\tn01440764\ttench,tincatinca\t5",
    ]
    loaded = Vocabulary.load(tsv_a)
    assert loaded == vocab and loaded.sha256 == vocab.sha256
    assert loaded.label(["#UrsusArctos", "crane"]) == [0, 2]
    assert list(tmp_path.glob("*/.*.tmp")) == []  # atomic writes leave no temporary files


def test_load_rejects_a_foreign_file(tmp_path):
    bad = tmp_path / "vocab.tsv"
    bad.write_text("hashtag\tcount\ndog\t3\n")
    with pytest.raises(UserInputError, match="not a vocab.tsv"):
        Vocabulary.load(bad)
    with pytest.raises(UserInputError, match="not found"):
        Vocabulary.load(tmp_path / "missing.tsv")
