"""Integration tests: real servers (Radicale, Xandikos, SMTP, our HTTP server), service
parts in-process."""
