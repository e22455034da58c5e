// Validates one HTML document (stdin) with html-validate's recommended rules and prints
// {valid, messages} as JSON: the HTML part of an invitation must pass it. One rule is off:
// long-title is advice for search engines' result lists, and an e-mail's <title> (its
// subject, which holds the session's title of up to 200 characters) is never one.
import { HtmlValidate } from "html-validate";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const validator = new HtmlValidate({
  extends: ["html-validate:recommended"],
  rules: { "long-title": "off" },
});
const report = await validator.validateString(Buffer.concat(chunks).toString("utf8"));
const messages = report.results.flatMap((r) => r.messages.map((m) => `${m.line}:${m.column} ${m.ruleId}: ${m.message}`));
process.stdout.write(JSON.stringify({ valid: report.valid, messages }));
