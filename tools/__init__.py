"""Development tooling: embedded servers, load runs (imports no app code)."""
