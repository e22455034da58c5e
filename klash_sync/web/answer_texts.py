"""The words of answers on the web: the answer page, the counts, the organisers' view and
their Atom feed, in Finnish, Swedish and English (translated by hand, like ``texts.py``).

Kept apart from ``texts.py`` because they are read by fewer pages and the organisers'
words never reach a mentor's page. Every language has every key (tested with the others).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

ANSWER_TEXTS: dict[str, dict[str, str]] = {
    "fi": {
        "accepted": "Tulen", "tentative": "Ehkä", "declined": "En tule", "none": "Ei vastausta",
        "count_accepted": "tulossa", "count_tentative": "ehkä", "count_declined": "ei tule",
        "count_none": "ei vastannut", "answers": "Vastaukset", "answer_col": "Vastaus",
        "your_answer": "Vastauksesi", "answer_prompt": "Tuletko tilaisuuteen?",
        "answer_here": "Vastaa", "answered": "Vastauksesi on tallennettu",
        "answered_note": "Voit muuttaa vastaustasi milloin tahansa samasta linkistä.",
        "current": "Nykyinen vastauksesi", "no_answer_yet": "Et ole vielä vastannut.",
        "failed": "Vastausta ei voitu tallentaa juuri nyt. Yritä hetken kuluttua uudelleen.",
        "organisers": "Kuka tulee (järjestäjille)", "via_email": "sähköpostilla",
        "via_caldav": "kalenterissa", "via_web": "sivulla", "earlier": "aiempaan versioon",
        "when_answered": "Vastattu", "channel": "Kanava", "comment": "Kommentti",
        "answers_atom": "Vastaukset syötteenä (Atom)",
        "said_accepted": "tulee", "said_tentative": "tulee ehkä", "said_declined": "ei tule",
    },
    "sv": {
        "accepted": "Jag kommer", "tentative": "Kanske", "declined": "Jag kommer inte",
        "none": "Inget svar",
        "count_accepted": "kommer", "count_tentative": "kanske", "count_declined": "kommer inte",
        "count_none": "har inte svarat", "answers": "Svar", "answer_col": "Svar",
        "your_answer": "Ditt svar", "answer_prompt": "Kommer du till tillfället?",
        "answer_here": "Svara", "answered": "Ditt svar har sparats",
        "answered_note": "Du kan ändra ditt svar när som helst med samma länk.",
        "current": "Ditt nuvarande svar", "no_answer_yet": "Du har inte svarat ännu.",
        "failed": "Svaret kunde inte sparas just nu. Försök igen om en stund.",
        "organisers": "Vem kommer (för arrangörerna)", "via_email": "per e-post",
        "via_caldav": "i kalendern", "via_web": "på sidan", "earlier": "till en tidigare version",
        "when_answered": "Svarat", "channel": "Kanal", "comment": "Kommentar",
        "answers_atom": "Svaren som flöde (Atom)",
        "said_accepted": "kommer", "said_tentative": "kommer kanske", "said_declined": "kommer inte",
    },
    "en": {
        "accepted": "Coming", "tentative": "Maybe", "declined": "Not coming", "none": "No answer",
        "count_accepted": "coming", "count_tentative": "maybe", "count_declined": "not coming",
        "count_none": "no answer", "answers": "Answers", "answer_col": "Answer",
        "your_answer": "Your answer", "answer_prompt": "Are you coming to this session?",
        "answer_here": "Answer", "answered": "Your answer has been saved",
        "answered_note": "You can change your answer at any time with the same link.",
        "current": "Your current answer", "no_answer_yet": "You have not answered yet.",
        "failed": "The answer could not be saved just now. Please try again in a moment.",
        "organisers": "Who is coming (for organisers)", "via_email": "by e-mail",
        "via_caldav": "in their calendar", "via_web": "on the page", "earlier": "to an earlier version",
        "when_answered": "Answered", "channel": "Channel", "comment": "Comment",
        "answers_atom": "Answers as a feed (Atom)",
        "said_accepted": "accepted", "said_tentative": "may come to", "said_declined": "declined",
    },
}


def answer_sentence(name: str, answer: str, title: str, start: datetime, lang: str) -> str:
    """One answer in words, for the organisers' feed: "Milja Köpsi declined Janakkala, 24.9."."""
    said = ANSWER_TEXTS[lang]["said_" + answer]
    day = f"{start.day}.{start.month}."
    if lang == "en":
        return f"{name} {said} {title}, {day}"
    return f"{name} {said}: {title}, {day}"


def moment_text(moment: datetime | None, tz: ZoneInfo, lang: str) -> str:
    """When an answer was given, as the page writes times: "1.6.2026 klo 15.02"."""
    if moment is None:
        return "–"
    local = moment.astimezone(tz)
    if lang == "en":
        return f"{local:%Y-%m-%d %H:%M}"
    return f"{local.day}.{local.month}.{local.year} {'klo' if lang == 'fi' else 'kl.'} {local:%H.%M}"
