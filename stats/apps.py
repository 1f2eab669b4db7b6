"""App config for stats: the daily care analytics."""

from django.apps import AppConfig


class StatsConfig(AppConfig):
    name = "stats"
    verbose_name = "Care analytics"

    def ready(self) -> None:
        from stats import citus, signals  # noqa: F401  (connects the receivers)
