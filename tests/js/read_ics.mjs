// Reads an iCalendar document on stdin with ical.js and prints its events as JSON.
// Time zones come only from the document's own VTIMEZONEs, as in a real client.
import { ICAL, readRoot, time } from "./ical_stdin.mjs";

const root = await readRoot();
const events = root.getAllSubcomponents("vevent").map((vevent) => {
  const event = new ICAL.Event(vevent);
  return {
    uid: event.uid,
    summary: event.summary,
    location: event.location,
    description: event.description,
    status: vevent.getFirstPropertyValue("status"),
    sequence: event.sequence,
    allDay: event.startDate.isDate,
    tzid: event.startDate.isDate ? null : event.startDate.zone.tzid,
    start: time(event.startDate),
    end: time(event.endDate),
    url: vevent.getFirstPropertyValue("url"),
    alarms: vevent.getAllSubcomponents("valarm").length,
  };
});
const name = root.getFirstPropertyValue("x-wr-calname");
process.stdout.write(JSON.stringify({ name, events }));
