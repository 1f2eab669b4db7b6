"""Events of the care-note domain that other apps react to, so the domain imports none of them."""

from django.dispatch import Signal

# Sent after the transaction that added, changed or removed care notes commits, once per
# tenant: ``tenant_id`` (int) and ``days`` (frozenset of tenant-local dates whose notes
# changed). The analytics drop their cached answers for those days (stats/signals.py).
care_notes_changed = Signal()
