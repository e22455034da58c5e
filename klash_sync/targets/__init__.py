"""Calendar servers we push to: any CalDAV server, and the embedded Radicale."""
