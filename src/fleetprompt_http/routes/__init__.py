"""Route handlers, one module per surface of the contract's endpoint table (§5)."""
