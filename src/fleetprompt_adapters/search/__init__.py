"""Search engines behind the catalogue's search port (ADR 0027).

``tantivy_index`` needs the ``search`` extra (``pip install "fleetprompt[search]"``);
nothing here is imported by the other adapters unless a search engine is configured.
"""
