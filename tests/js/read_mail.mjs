// Reads one raw e-mail (RFC 5322 bytes on stdin) with postal-mime, a mail parser from
// outside Python, and prints what a mail client would show as JSON: the decoded Subject,
// the From and To mailboxes, and the text, HTML and calendar parts.
import PostalMime from "postal-mime";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const email = await PostalMime.parse(Buffer.concat(chunks));
const mailbox = (m) => (m ? { name: m.name, address: m.address } : null);
process.stdout.write(JSON.stringify({
  subject: email.subject,
  from: mailbox(email.from),
  to: (email.to || []).map(mailbox),
  text: email.text ?? null,
  html: email.html ?? null,
  attachments: email.attachments.map((a) => ({ filename: a.filename, mimeType: a.mimeType, method: a.method ?? null })),
}));
