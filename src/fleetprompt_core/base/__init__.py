"""The bottom of the core: error types, enums and the contract's bounds.

Every other layer of ``fleetprompt_core`` may import these modules; they
import nothing of the core.
"""
