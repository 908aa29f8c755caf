"""Entities and their rules: the model, accounts, state machines, search semantics.

The domain imports ``fleetprompt_core.base`` and the policies, nothing above.
"""
