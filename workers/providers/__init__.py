"""Provider adapters: one module per provider; the registry maps names to adapters."""
