"""The search engine behind the catalogue's search port (ADR 0027, 0034).

``tantivy_index`` (the index every adapter composes: the in-memory adapter
directly, the SQL adapter through ``follower``) needs tantivy, which the
``sql`` and ``server`` extras include and the ``search`` extra adds to a
core-only install. The adapters import it only when a relevance search with
words first needs it (the in-memory adapter) or when they are composed (the
SQL adapter's ``bootstrap``).
"""
