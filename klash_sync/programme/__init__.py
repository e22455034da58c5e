"""The programme: what organisers wrote, as checked, frozen data.

``model`` is the schema (pydantic, no I/O), built from the field types in ``fields``;
``load`` turns ``programme.toml`` into a ``Programme`` or a ``ProgrammeError`` that lists
every problem with file, line and field, worded by ``problems``.

May import: the foundation (``errors``, ``settings``, ``logs``, ``clock``). Nothing above.
"""
