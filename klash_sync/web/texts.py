"""The page's words, in Finnish, Swedish and English: translated by hand, never generated.

Finnish is the default (no ``?lang=``, no Accept-Language match); Finland is bilingual,
and so is Vantaa. Municipalities are named as each language writes them.
"""

from __future__ import annotations

# The page's languages; the first is the default (no ?lang=, no Accept-Language match).
LANGUAGES = ("fi", "sv", "en")
# Each language named in itself, for the language switch.
LANGUAGE_NAMES = {"fi": "Suomeksi", "sv": "På svenska", "en": "In English"}

TEXTS: dict[str, dict[str, str]] = {
    "fi": {
        "navigation": "Sivut", "languages": "Kieli",
        "programme": "Ohjelma", "subscribe": "Tilaa kalenteriin", "all_day": "koko päivä",
        "mentors": "Mentorit", "mentor": "Mentori", "municipality": "Kunta",
        "joint": "yhteinen tilaisuus kaikille tiimeille", "cancelled": "Peruttu",
        "tentative": "Alustava", "copy_link": "Kopioi linkki", "copied": "Kopioitu!",
        "webcal": "Tilaa kalenteriin", "https": "Avaa .ics-tiedosto",
        "qr": "Skannaa puhelimella", "no_sessions": "Ei tilaisuuksia.",
        "no_links": "Syötteet eivät ole julkisia: pyydä omaa tilausosoitettasi järjestäjältä.",
        "your_calendar": "Oma kalenterisi", "no_calendar": "Tapahtumia ei viedä kalenteriisi suoraan; "
        "tilaa syöte alta.", "status": "Tilanne järjestäjille", "loaded": "Ohjelma luettu",
        "file_broken": "tiedostossa on virhe", "in_sync": "ajan tasalla",
        "failing_since": "epäonnistunut", "last_sync": "viimeisin synkronointi",
        "state": "Tila", "calendars_caption": "Mentorien kalenterit",
        "no_calendars": "Kalentereita ei ole vielä synkronoitu.",
        "error_title": "Ohjelmatiedostossa on virhe",
        "error_help": "Muutosta ei ole otettu käyttöön: kalentereissa ja syötteissä on edellinen "
                      "toimiva versio. Korjaa tiedosto; korjaus otetaan käyttöön heti.",
        "back": "Koko ohjelma", "how": "Näin tilaat",
        "how_google": "Google-kalenteri: Muut kalenterit → + → URL-osoitteen perusteella, liitä "
                      "linkki. Google päivittää tilatut kalenterit vain muutaman tunnin välein.",
        "how_apple": "Apple-kalenteri (iPhone, Mac): napauta ”Tilaa kalenteriin” tai valitse "
                     "Arkisto → Uusi kalenteritilaus ja liitä linkki.",
        "how_outlook": "Outlook: Lisää kalenteri → Tilaa verkosta, liitä linkki.",
        "changes": "Muutokset", "no_changes": "Ei muutoksia vielä.",
        "atom": "Muutokset syötteenä (Atom)",
        "private_note": "Tämä osoite on henkilökohtainen: älä jaa sitä.",
        "unloaded_title": "Ohjelmaa päivitetään",
        "unloaded_note": "Ohjelmaa päivitetään parhaillaan. Palaa hetken kuluttua.",
        "unloaded_help": "Aiempaa toimivaa versiota ei ole tallessa, joten sivulla ja syötteissä "
                         "ei ole vielä mitään. Korjaa tiedosto; korjaus otetaan käyttöön heti.",
        "unloaded_loading": "Ohjelmaa luetaan.",
        # --- the embedded calendar in a calendar app (discovery) ---
        "dav_title": "Lisää kalenteri omaan sovellukseesi",
        "dav_intro": "Tapahtumasi ovat myös tämän palvelun kalenterissa. Lisää kalenterisovellukseesi "
                     "CalDAV-tili alla olevilla tiedoilla; sovellus löytää kalenterin itse. "
                     "Kalenteria voi vain lukea.",
        "dav_server": "Palvelimen osoite", "dav_user": "Käyttäjätunnus", "dav_password": "Salasana",
        "dav_password_note": "saat sen järjestäjältä",
        "dav_calendar": "Kalenterin osoite", "dav_calendar_note": "vain jos sovellus kysyy sitä",
        # --- e-mail invitations on the organisers' status ---
        "invites_caption": "Kutsut sähköpostilla", "invites_sent": "Lähetetyt",
        "invites_pending": "Odottavat", "invites_failed": "Epäonnistuneet",
        "invites_last_sent": "Viimeksi lähetetty", "invites_answer": "Sähköpostipalvelimen vastaus",
        # --- reading mentors' answers, on the organisers' status ---
        "replies_mailbox": "Vastausten lukeminen postilaatikosta",
        "replies_declines": "Ilmoitus perumisista järjestäjälle",
        "replies_failing": "ei onnistu",
    },
    # Finland-Swedish as Kuntaliitto and the bilingual municipalities write it.
    "sv": {
        "navigation": "Sidor", "languages": "Språk",
        "programme": "Program", "subscribe": "Prenumerera", "all_day": "hela dagen",
        "mentors": "Mentorer", "mentor": "Mentor", "municipality": "Kommun",
        "joint": "gemensamt tillfälle för alla team", "cancelled": "Inställd",
        "tentative": "Preliminär", "copy_link": "Kopiera länken", "copied": "Kopierad!",
        "webcal": "Prenumerera i kalendern", "https": "Öppna .ics-filen",
        "qr": "Skanna med telefonen", "no_sessions": "Inga tillfällen.",
        "no_links": "Flödena är inte offentliga: be arrangören om din egen adress.",
        "your_calendar": "Din kalender", "no_calendar": "Tillfällena förs inte direkt in i din "
        "kalender; prenumerera på flödet nedan.", "status": "Läget för arrangörerna",
        "loaded": "Programmet inläst", "file_broken": "filen innehåller ett fel",
        "in_sync": "uppdaterad", "failing_since": "misslyckas sedan",
        "last_sync": "senaste synkronisering", "state": "Läge",
        "calendars_caption": "Mentorernas kalendrar",
        "no_calendars": "Inga kalendrar har synkroniserats ännu.",
        "error_title": "Programfilen innehåller ett fel",
        "error_help": "Ändringen har inte tagits i bruk: kalendrarna och flödena har kvar den "
                      "senaste fungerande versionen. Rätta filen, så tas rättelsen i bruk genast.",
        "back": "Hela programmet", "how": "Så här prenumererar du",
        "how_google": "Google Kalender: Andra kalendrar → + → Från webbadress, klistra in länken. "
                      "Google uppdaterar prenumererade kalendrar bara med några timmars mellanrum.",
        "how_apple": "Apples Kalender (iPhone, Mac): tryck på ”Prenumerera i kalendern” eller välj "
                     "Arkiv → Ny kalenderprenumeration och klistra in länken.",
        "how_outlook": "Outlook: Lägg till kalender → Prenumerera från webben, klistra in länken.",
        "changes": "Ändringar", "no_changes": "Inga ändringar ännu.",
        "atom": "Ändringarna som flöde (Atom)",
        "private_note": "Den här adressen är personlig: dela den inte med andra.",
        "unloaded_title": "Programmet uppdateras",
        "unloaded_note": "Programmet håller på att uppdateras. Kom tillbaka om en stund.",
        "unloaded_help": "Det finns ingen tidigare fungerande version sparad, så sidan och flödena "
                         "är tomma tills vidare. Rätta filen, så tas rättelsen i bruk genast.",
        "unloaded_loading": "Programmet läses in.",
        # --- the embedded calendar in a calendar app (discovery) ---
        "dav_title": "Lägg till kalendern i din kalenderapp",
        "dav_intro": "Dina tillfällen finns också i en kalender på den här tjänsten. Lägg till ett "
                     "CalDAV-konto i din kalenderapp med uppgifterna nedan; appen hittar kalendern "
                     "själv. Kalendern kan bara läsas.",
        "dav_server": "Serverns adress", "dav_user": "Användarnamn", "dav_password": "Lösenord",
        "dav_password_note": "du får det av arrangören",
        "dav_calendar": "Kalenderns adress", "dav_calendar_note": "bara om appen frågar efter den",
        # --- e-mail invitations on the organisers' status ---
        "invites_caption": "Inbjudningar per e-post", "invites_sent": "Skickade",
        "invites_pending": "Väntande", "invites_failed": "Misslyckade",
        "invites_last_sent": "Senast skickad", "invites_answer": "E-postserverns svar",
        "replies_mailbox": "Läsning av svar från brevlådan",
        "replies_declines": "Meddelande om återbud till arrangören",
        "replies_failing": "misslyckas",
    },
    "en": {
        "navigation": "Pages", "languages": "Language",
        "programme": "Programme", "subscribe": "Subscribe", "all_day": "all day",
        "mentors": "Mentors", "mentor": "Mentor", "municipality": "Municipality",
        "joint": "joint session for all teams", "cancelled": "Cancelled",
        "tentative": "Tentative", "copy_link": "Copy link", "copied": "Copied!",
        "webcal": "Add to calendar", "https": "Open the .ics file",
        "qr": "Scan with a phone", "no_sessions": "No sessions.",
        "no_links": "The feeds are not public: ask the organiser for your own address.",
        "your_calendar": "Your calendar", "no_calendar": "Events are not pushed to your calendar; "
        "subscribe to the feed below.", "status": "Status for organisers",
        "loaded": "Programme loaded", "file_broken": "the file has an error",
        "in_sync": "in sync", "failing_since": "failing since", "last_sync": "last sync",
        "state": "State", "calendars_caption": "Mentors' calendars",
        "no_calendars": "No calendar has been synced yet.",
        "error_title": "The programme file has an error",
        "error_help": "The edit has not been applied: calendars and feeds keep the last good "
                      "version. Fix the file; the fix is applied at once.",
        "back": "Whole programme", "how": "How to subscribe",
        "how_google": "Google Calendar: Other calendars → + → From URL, paste the link. "
                      "Google refreshes subscribed calendars only every several hours.",
        "how_apple": "Apple Calendar (iPhone, Mac): tap “Add to calendar”, or File → New "
                     "Calendar Subscription and paste the link.",
        "how_outlook": "Outlook: Add calendar → Subscribe from web, paste the link.",
        "changes": "What changed", "no_changes": "No changes yet.",
        "atom": "Changes as a feed (Atom)",
        "private_note": "This address is personal: do not share it.",
        "unloaded_title": "The programme is being updated",
        "unloaded_note": "The programme is being updated right now. Please come back in a moment.",
        "unloaded_help": "No earlier working version is kept, so the page and the feeds are "
                         "empty for now. Fix the file; the fix is applied at once.",
        "unloaded_loading": "The programme is being loaded.",
        # --- the embedded calendar in a calendar app (discovery) ---
        "dav_title": "Add it to your calendar app",
        "dav_intro": "Your events are also in a calendar on this service. In your calendar app, add "
                     "a CalDAV account with the details below; the app finds the calendar itself. "
                     "The calendar is read-only.",
        "dav_server": "Server address", "dav_user": "User name", "dav_password": "Password",
        "dav_password_note": "you get it from the organiser",
        "dav_calendar": "Calendar address", "dav_calendar_note": "only if your app asks for it",
        # --- e-mail invitations on the organisers' status ---
        "invites_caption": "Invitations by e-mail", "invites_sent": "Sent",
        "invites_pending": "Pending", "invites_failed": "Failed",
        "invites_last_sent": "Last sent", "invites_answer": "Mail server's answer",
        "replies_mailbox": "Reading answers from the mailbox",
        "replies_declines": "Mail to the organiser about declines",
        "replies_failing": "failing",
    },
}


# Swedish names of bilingual and other well-known municipalities; others (Joensuu,
# Janakkala) are the same in both languages.
SWEDISH_PLACES = {
    "Vantaa": "Vanda", "Helsinki": "Helsingfors", "Espoo": "Esbo", "Kauniainen": "Grankulla",
    "Turku": "Åbo", "Tampere": "Tammerfors", "Oulu": "Uleåborg", "Vaasa": "Vasa",
    "Porvoo": "Borgå", "Kokkola": "Karleby", "Pietarsaari": "Jakobstad", "Raasepori": "Raseborg",
    "Hanko": "Hangö", "Loviisa": "Lovisa", "Sipoo": "Sibbo", "Kirkkonummi": "Kyrkslätt",
    "Hämeenlinna": "Tavastehus", "Lappeenranta": "Villmanstrand", "Kotka": "Kotka",
    "Mikkeli": "S:t Michel", "Kristiinankaupunki": "Kristinestad", "Lohja": "Lojo",
}


def place(name: str, lang: str) -> str:
    """A municipality's name as the language writes it (Vantaa is Vanda in Swedish)."""
    return SWEDISH_PLACES.get(name, name) if lang == "sv" else name
