"""System tests: the CLI and the daemon as processes, as an operator runs them."""
