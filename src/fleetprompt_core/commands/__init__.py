"""Payloads in, validated values out: the payload shapes (``payloads``) the use cases
are annotated with, and the parsers (``parsers``) they call first.

This layer sits above the entities (it builds them) and beside the ports
(neither knows the other); the use cases in ``services`` import both.
"""
