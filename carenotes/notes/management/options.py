"""Command-line options shared by the seeding management commands."""

from pathlib import Path

from carenotes.notes.seeding import DEFAULT_CREDENTIALS_PATH


def add_credentials_option(parser, *, help_text: str) -> None:
    """Add ``--credentials PATH`` (the demo credentials JSON) to ``parser``."""
    parser.add_argument(
        "--credentials",
        type=Path,
        default=DEFAULT_CREDENTIALS_PATH,
        help=f"{help_text} (default: .data/demo-credentials.json)",
    )
