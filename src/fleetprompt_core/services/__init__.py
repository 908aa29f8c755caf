"""The use cases, one module per attribute of :class:`~fleetprompt_core.FleetPrompt`.

Underscored modules (``_authz``, ``_idempotency``, ``_paging``, ``_audit``,
``_roles``) are helpers of the use cases and not part of the library API.
"""
