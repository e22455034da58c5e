"""Unit tests: pure pieces (the delivery base, routing), no servers, no processes."""
