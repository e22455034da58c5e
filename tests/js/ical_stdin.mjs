// Shared by the readers: the iCalendar document on stdin, parsed by ical.js with its own
// VTIMEZONEs registered (time zones come only from the document, as in a real client).
import ICAL from "ical.js";

export { ICAL };

export const time = (t) => (t.isDate ? t.toString() : t.toJSDate().toISOString());

export async function readRoot() {
  let input = "";
  process.stdin.setEncoding("utf8");
  for await (const chunk of process.stdin) input += chunk;
  const root = new ICAL.Component(ICAL.parse(input));
  for (const vtz of root.getAllSubcomponents("vtimezone")) {
    ICAL.TimezoneService.register(new ICAL.Timezone(vtz));
  }
  return root;
}
