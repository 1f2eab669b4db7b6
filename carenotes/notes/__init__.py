"""The care-note domain app (label ``carenotes``): patients, care notes, their API and admin."""
