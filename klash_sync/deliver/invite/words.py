"""The words of an invitation, in each mentor's language (``language`` in the programme).

One language per message, the mentor's: a subject that says "cancelled" once, in words
the mentor reads, is what a phone's mail list shows; two languages side by side doubled
every line. Finnish, Swedish (Finland's second official language, used in Vantaa) and
English, the languages of the page. Every language has every key (tested).
"""

from __future__ import annotations

from typing import Final

LANGUAGES: Final = ("fi", "sv", "en")

TEXTS: Final[dict[str, dict[str, str]]] = {
    "fi": {
        "invited": "Kutsu", "updated": "Päivitetty", "cancelled": "Peruttu",
        "lead_invited": "Sinut on kutsuttu mentoriksi Klash-tilaisuuteen.",
        "lead_updated": "Tilaisuuden tiedot ovat muuttuneet; kalenterisi päivittyy.",
        "lead_cancelled": "Tämä tilaisuus on peruttu tai et ole enää sen mentori; se poistuu kalenteristasi.",
        "handover": "Uusi lähettäjä",
        "lead_handover": ("Tilaisuutta ei ole peruttu: sen kutsut tulevat tästä lähtien uudesta "
                          "osoitteesta. Tämä merkintä poistuu kalenteristasi, ja heti perään "
                          "tuleva kutsu tuo sen takaisin."),
        "when": "Aika", "where": "Paikka", "others": "Muut mentorit", "details": "Lisätiedot",
        "programme": "Ohjelma", "feed": "Oma kalenterisyöte",
        "at": "klo", "all_day": "koko päivä", "zone_helsinki": "Helsingin aikaa",
        "weekdays": "ma ti ke to pe la su",
        "answer": "Tuletko? Vastaa", "accepted": "Tulen", "tentative": "Ehkä", "declined": "En tule",
    },
    "sv": {
        "invited": "Inbjudan", "updated": "Uppdaterad", "cancelled": "Inställd",
        "lead_invited": "Du är inbjuden som mentor till ett Klash-tillfälle.",
        "lead_updated": "Tillfällets uppgifter har ändrats; din kalender uppdateras.",
        "lead_cancelled": "Tillfället är inställt eller du är inte längre dess mentor; det tas bort "
                          "ur din kalender.",
        "handover": "Ny avsändare",
        "lead_handover": ("Tillfället är inte inställt: inbjudningarna kommer från och med nu "
                          "från en ny adress. Den här posten tas bort ur din kalender, och "
                          "inbjudan som kommer strax efter lägger tillbaka den."),
        "when": "Tid", "where": "Plats", "others": "Övriga mentorer", "details": "Mer information",
        "programme": "Programmet", "feed": "Ditt kalenderflöde",
        "at": "kl.", "all_day": "hela dagen", "zone_helsinki": "Helsingforstid",
        "weekdays": "mån tis ons tors fre lör sön",
        "answer": "Kommer du? Svara", "accepted": "Jag kommer", "tentative": "Kanske",
        "declined": "Jag kommer inte",
    },
    "en": {
        "invited": "Invitation", "updated": "Updated", "cancelled": "Cancelled",
        "lead_invited": "You are invited as a mentor to a Klash session.",
        "lead_updated": "The session has changed; your calendar is updated.",
        "lead_cancelled": "This session is cancelled or you no longer mentor it; it leaves your calendar.",
        "handover": "New sender",
        "lead_handover": ("The session is not cancelled: its invitations come from a new "
                          "address from now on. This entry leaves your calendar, and the "
                          "invitation that follows puts it back."),
        "when": "When", "where": "Where", "others": "Other mentors", "details": "Details",
        "programme": "Programme", "feed": "Your calendar feed",
        "at": "", "all_day": "all day", "zone_helsinki": "Helsinki time",
        "weekdays": "Mon Tue Wed Thu Fri Sat Sun",
        "answer": "Are you coming? Answer", "accepted": "Coming", "tentative": "Maybe",
        "declined": "Not coming",
    },
}


def words(language: str | None) -> dict[str, str]:
    """The texts of ``language``; Finnish when none is given (the programme's own language)."""
    return TEXTS.get(language or "fi", TEXTS["fi"])
