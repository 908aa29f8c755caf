"""Pure rules over plain values (strings, numbers, bytes): validation, URLs, markdown,
versions, tokens, signing, redaction, passwords, sessions, pagination, rate limits.

A policy imports only ``fleetprompt_core.base`` and other policies.
"""
