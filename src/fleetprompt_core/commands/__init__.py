"""Payloads in, validated values out: the parsers the use cases call first.

This layer sits above the entities (it builds them) and beside the ports
(neither knows the other); the use cases in ``services`` import both.
"""
