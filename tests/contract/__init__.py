"""Contract suites: one suite per adapter, run against every real server it supports
and against its in-memory double."""
