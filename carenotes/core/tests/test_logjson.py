"""JSON log lines: application records keep their extras, gunicorn access atoms become fields."""

import json
import logging
import sys

from carenotes.core.logjson import AccessJsonFormatter, JsonFormatter


def test_the_json_formatter_keeps_extras_and_exceptions():
    try:
        raise ValueError("broken")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("once",), sys.exc_info(),
            extra={"tenant_id": 3},
        )  # fmt: skip
    line = json.loads(JsonFormatter().format(record))
    assert line.pop("ts")
    assert "ValueError: broken" in line.pop("exc_info")
    assert line == {"level": "ERROR", "logger": "x", "message": "failed once", "tenant_id": 3}


def test_access_atoms_become_named_fields_with_quotes_unescaped():
    # gunicorn passes its atoms as the record's args, quotes escaped for its text format.
    atoms = {
        "h": "10.0.0.7",
        "m": "POST",
        "U": "/api/notes/",
        "s": "201",
        "B": 312,
        "M": 14,
        "{x-request-id}o": "req-9",
        "a": 'agent \\"x\\"',
    }
    record = logging.LogRecord("gunicorn.access", logging.INFO, "", 0, "%(h)s", (), None)
    record.args = atoms
    line = json.loads(AccessJsonFormatter().format(record))
    assert line.pop("ts")
    assert line == {
        "level": "INFO",
        "logger": "gunicorn.access",
        "message": "access",
        "remote_addr": "10.0.0.7",
        "method": "POST",
        "path": "/api/notes/",
        "status": 201,
        "bytes": 312,
        "duration_ms": 14,
        "request_id": "req-9",
        "user_agent": 'agent "x"',
    }
