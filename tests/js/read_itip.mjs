// Reads one iTIP object (the text/calendar part of an invitation) with ical.js, as a
// calendar client would, and prints what scheduling needs as JSON.
import { ICAL, readRoot, time } from "./ical_stdin.mjs";

const root = await readRoot();
const events = root.getAllSubcomponents("vevent").map((vevent) => {
  const event = new ICAL.Event(vevent);
  const organizer = vevent.getFirstProperty("organizer");
  return {
    uid: event.uid,
    sequence: event.sequence,
    summary: event.summary,
    status: vevent.getFirstPropertyValue("status"),
    allDay: event.startDate.isDate,
    start: time(event.startDate),
    end: time(event.endDate),
    organizer: organizer ? { value: organizer.getFirstValue(), cn: organizer.getParameter("cn") } : null,
    attendees: vevent.getAllProperties("attendee").map((a) => ({
      value: a.getFirstValue(),
      cn: a.getParameter("cn"),
      role: a.getParameter("role"),
      partstat: a.getParameter("partstat"),
      rsvp: a.getParameter("rsvp"),
    })),
  };
});
process.stdout.write(JSON.stringify({ method: root.getFirstPropertyValue("method"), events }));
