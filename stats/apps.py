"""App config for stats: the daily care analytics."""

from django.apps import AppConfig


class StatsConfig(AppConfig):
    name = "stats"
    verbose_name = "Care analytics"
