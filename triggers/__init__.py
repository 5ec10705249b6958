"""Azure Functions blueprints: thin translations of triggers into calls of ``dr_core``."""
