"""The klash-sync benchmark: `python -m bench` (see bench/README in the main README)."""
