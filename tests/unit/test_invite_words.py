"""Every language of the invitations has every word, and a week of seven days."""

from __future__ import annotations

from klash_sync.deliver.invite.words import LANGUAGES, TEXTS, words
from klash_sync.programme.model import Mentor


def test_every_language_has_every_key_and_seven_weekdays():
    keys = set(TEXTS["fi"])
    for language in LANGUAGES:
        assert set(TEXTS[language]) == keys, language
        assert len(TEXTS[language]["weekdays"].split()) == 7, language
        assert all(TEXTS[language][k] for k in keys - {"at"}), language


def test_the_languages_are_the_ones_a_mentor_may_choose_and_finnish_is_the_default():
    allowed = Mentor.model_fields["language"].annotation.__args__  # type: ignore[union-attr]
    assert tuple(allowed) == LANGUAGES
    assert Mentor(id="a", name="A").language == "fi"
    assert words(None) is TEXTS["fi"]
