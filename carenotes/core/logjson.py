"""JSON-lines log formatters, free of Django imports so gunicorn's master can load them too."""

import json
import logging
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is
# emitted as a field of the JSON line.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__
) | {"message", "asctime", "taskName"}

# gunicorn access-log atoms -> JSON field names (gunicorn's documented atom letters).
ACCESS_FIELDS = {
    "h": "remote_addr",
    "m": "method",
    "U": "path",
    "s": "status",
    "B": "bytes",
    "M": "duration_ms",
    "{x-request-id}o": "request_id",
    "a": "user_agent",
}


def _base(record: logging.LogRecord, message: str) -> dict:
    return {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "message": message,
    }


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line: time, level, logger, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        data = _base(record, record.getMessage())
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES:
                data[key] = value
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class AccessJsonFormatter(logging.Formatter):
    """Format a gunicorn access record as JSON with its atoms as named fields."""

    def format(self, record: logging.LogRecord) -> str:
        atoms = record.args if isinstance(record.args, dict) else {}
        data = _base(record, "access")
        for atom, field in ACCESS_FIELDS.items():
            value = atoms.get(atom, "-") if atom.startswith("{") else atoms.get(atom)
            # gunicorn escapes quotes for its text format; JSON does its own escaping.
            data[field] = value.replace('\\"', '"') if isinstance(value, str) else value
        if isinstance(data["status"], str) and data["status"].isdigit():
            data["status"] = int(data["status"])
        return json.dumps(data, default=str)
