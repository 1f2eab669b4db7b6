"""The access audit trail: who read which tenant's care notes, when, through which route."""
