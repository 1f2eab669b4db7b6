"""Care analytics: GET /api/care-stats/, its Redis cache and the warm-hit path."""
