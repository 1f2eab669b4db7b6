"""Tenancy, the ground floor: tenants, facilities, memberships, API tokens, row-level security."""
