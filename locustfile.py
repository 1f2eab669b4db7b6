"""locust's entry point (``locust -f locustfile.py``): the user classes of tools/locust_users.py.

The profiles live in the ``tools`` package so that the import-linter contract "load
generation imports no app code" covers them (pyproject.toml).
"""

from tools.locust_users import *  # noqa: F403  (locust collects the User classes by name)
