"""The ``klash-sync`` command line: parses arguments, runs or asks the service, prints.

May import everything; nothing imports it.
"""
