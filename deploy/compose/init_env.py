"""Write deploy/.env for deploy/compose.yaml: .env.example with every empty secret filled at random.

    python3 deploy/compose/init_env.py            # writes deploy/.env; refuses to overwrite it
    python3 deploy/compose/init_env.py OUT_FILE

Standard library only, so that it runs with any Python 3 before anything is installed. Secrets are
URL-safe (`secrets.token_urlsafe`): the PostgreSQL password goes into SQM_DATABASE_URL as it is.
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE / ".env.example"
DEFAULT_OUT = HERE.parent / ".env"
SECRET = re.compile(r"^([A-Z0-9_]+_(?:PASSWORD|TOKEN|SECRET))=\s*$")


def filled(example: str, token: Callable[[], str] = lambda: secrets.token_urlsafe(32)) -> str:
    """The example with a fresh `token()` for each empty `*_PASSWORD=` / `*_TOKEN=` / `*_SECRET=` line."""
    return "".join(f"{m.group(1)}={token()}\n" if (m := SECRET.match(line)) else line
                   for line in example.splitlines(keepends=True))


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    if out.exists():
        print(f"{out} exists: not overwritten (delete it first to start with new secrets)", file=sys.stderr)
        return 1
    out.write_text(filled(EXAMPLE.read_text()))
    out.chmod(0o600)
    print(f"wrote {out}; start with: docker compose -f deploy/compose.yaml up -d")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
