"""WordNet 3.0 noun reader: real files from Debian's wordnet-base, and a tiny hand-made copy."""

from __future__ import annotations

import pytest

from datamodules.errors import UserInputError
from datamodules.wordnet import WORDNET_DIR_ENV, load_wordnet

BROWN_BEAR = "n02132136"
TENCH = "n01440764"
ENTITY = "n00001740"


@pytest.fixture(scope="module")
def wn():
    return load_wordnet()


def test_all_noun_synsets_and_lemmas_load(wn):
    assert len(wn) == 82115
    assert len(wn.senses) == 117798


def test_synset_lemmas_hypernyms_gloss(wn):
    bear = wn.synset(BROWN_BEAR)
    assert bear.lemmas == ("brown_bear", "bruin", "Ursus_arctos")
    assert bear.hypernyms == ("n02131653",)  # bear
    assert bear.gloss == "large ferocious bear of Eurasia"
    assert wn.lemmas(TENCH) == ("tench", "Tinca_tinca")


def test_instance_hypernyms_are_followed(wn):
    # Stephen Crane is an *instance* of writer (pointer @i)
    assert wn.lemmas("n10914447") == ("Crane", "Stephen_Crane")
    assert wn.hypernyms("n10914447") == ("n10794014",)
    assert wn.lemmas("n10794014")[0] == "writer"


def test_senses_in_index_order(wn):
    assert wn.senses_of("crane") == (
        "n10914447",
        "n10914331",
        "n09295455",
        "n03126707",
        "n02012849",
    )
    assert wn.senses_of("Brown Bear") == (BROWN_BEAR,)
    assert wn.senses_of("bruin") == ("n02132320", BROWN_BEAR)
    assert wn.senses_of("qwzx") == ()


def test_ancestors_and_paths(wn):
    ancestors = wn.ancestors(TENCH)
    assert ancestors[0] == "n01439121"  # cyprinid, the direct hypernym
    assert ancestors[-1] == ENTITY
    assert TENCH not in ancestors and len(ancestors) == len(set(ancestors)) == 16
    paths = wn.hypernym_paths("n02084071")  # dog: canine and domestic animal
    assert len(paths) == 2
    assert all(p[0] == ENTITY and p[-1] == "n02084071" for p in paths)
    assert wn.depth("n02084071") == 8
    assert wn.depth(ENTITY) == 0


def test_unknown_synset_is_a_clear_error(wn):
    with pytest.raises(UserInputError, match="not a WordNet 3.0 noun synset"):
        wn.synset("n99999999")


def test_cached_per_process(wn):
    assert load_wordnet() is wn


def test_missing_files_name_the_debian_package(tmp_path):
    with pytest.raises(UserInputError, match="wordnet-base"):
        load_wordnet(tmp_path)


def test_parses_a_small_copy_via_the_environment(tmp_path, monkeypatch):
    header = "  1 This software and database is being provided\n"
    (tmp_path / "data.noun").write_text(
        header
        + "00001740 03 n 01 entity 0 001 ~ 00002000 n 0000 | that which exists  \n"
        + "00002000 05 n 02 Brown_bear 0 bruin 1 002 @ 00001740 n 0000 @i 00001740 n 0000 "
        + "| a bear; big  \n"
    )
    (tmp_path / "index.noun").write_text(
        header
        + "bruin n 1 1 @ 1 0 00002000  \n"
        + "brown_bear n 1 1 @ 1 0 00002000  \n"
        + "entity n 1 1 ~ 1 1 00001740  \n"
    )
    monkeypatch.setenv(WORDNET_DIR_ENV, str(tmp_path))
    small = load_wordnet()
    assert len(small) == 2
    assert small.lemmas("n00002000") == ("Brown_bear", "bruin")
    assert small.hypernyms("n00002000") == ("n00001740", "n00001740")
    assert small.ancestors("n00002000") == ("n00001740",)
    assert small.gloss("n00002000") == "a bear; big"
    assert small.senses_of("Brown_Bear") == ("n00002000",)
