"""The managers' dashboard: server-rendered pages over the analytics and care-note selectors."""
