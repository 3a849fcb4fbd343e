"""One file per power-source backend, each registered by name (see agent.power.registry)."""
