// Reads one iTIP object (the text/calendar part of an invitation) with ical.js, as a
// calendar client would, and prints what scheduling needs as JSON.
import ICAL from "ical.js";

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;

const root = new ICAL.Component(ICAL.parse(input));
for (const vtz of root.getAllSubcomponents("vtimezone")) {
  ICAL.TimezoneService.register(new ICAL.Timezone(vtz));
}
const events = root.getAllSubcomponents("vevent").map((vevent) => {
  const event = new ICAL.Event(vevent);
  const time = (t) => (t.isDate ? t.toString() : t.toJSDate().toISOString());
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
