"""The application: every use case, wired to one :class:`Runtime`."""

from __future__ import annotations

from fleetprompt_core.services.accounts import Accounts
from fleetprompt_core.services.admin import Admin
from fleetprompt_core.services.catalog import Catalog
from fleetprompt_core.services.credentials import Credentials
from fleetprompt_core.services.installs import Installs
from fleetprompt_core.services.operator import Operator
from fleetprompt_core.services.profiles import Profiles
from fleetprompt_core.services.publishing import Publishing
from fleetprompt_core.services.redemption import Redeemer
from fleetprompt_core.services.retention import Retention
from fleetprompt_core.services.runtime import Runtime
from fleetprompt_core.services.storefront import Storefront

__all__ = ["FleetPrompt"]


class FleetPrompt:
    """The use cases of FleetPrompt grouped by surface.

    Build one with a composition root (``fleetprompt_adapters.memory.bootstrap``
    for the in-memory adapter); it holds no state of its own and is safe to
    share between threads.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.catalog = Catalog(runtime)
        self.publishing = Publishing(runtime)
        self.profiles = Profiles(runtime)
        self.installs = Installs(runtime)
        self.redemption = Redeemer(runtime)
        self.admin = Admin(runtime)
        self.retention = Retention(runtime)
        self.operator = Operator(runtime)
        self.credentials = Credentials(runtime)
        self.accounts = Accounts(runtime)
        self.storefront = Storefront(runtime)
