"""The carenotes project: settings and URL wiring; infrastructure in core/, the domain in notes/."""
