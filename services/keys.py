"""API keys: `python -m services.keys create NAME --role read|ingest|admin`, `list`, `revoke ID`.

The key is printed once, at creation; only its hash is stored. The API reads the keys every 10 s,
so a new or revoked key takes effect within 10 s.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.keys import ROLES, KeyStore
from db.engine import connect
from services.config import Settings

app = typer.Typer(add_completion=False, help=__doc__, no_args_is_help=True)


def _store() -> KeyStore:
    return KeyStore(connect(Settings().database_url))


@app.command()
def create(name: Annotated[str, typer.Argument(help="who or what uses it, e.g. wall-screen-3")],
           role: Annotated[str, typer.Option(help="read, ingest or admin")] = "read") -> None:
    """Create a key and print it (the only time it is shown)."""
    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}")
    key = _store().create(name, role)
    typer.echo(key)
    typer.echo(f"{role} key for {name!r}: {advice(role)}", err=True)


def advice(role: str) -> str:
    """What to do with a new key of `role`: where it belongs, and where it does not.

    >>> advice("read")[:44]
    'sign in once at /board/login on the wall scr'
    """
    if role == "read":
        return ("sign in once at /board/login on the wall screen it is for (the screen keeps a session), or send "
                "`Authorization: Bearer <key>` to read the API and /metrics")
    if role == "ingest":
        return "send it as `Authorization: Bearer <key>` with POST /v1/events (it also reads)"
    return ("send it as `Authorization: Bearer <key>` for rules, targets, silences and acknowledgements; to "
            "acknowledge from the board, sign in at /board/login once in that person's own browser, never on a "
            "wall screen (any admin call could be made from it: wall screens get read keys)")


@app.command("list")
def list_keys() -> None:
    """Every key: id, name, role, created, revoked."""
    table = Table("id", "name", "role", "created", "revoked")
    for k in _store().list():
        table.add_row(k.id, k.name, k.role, k.created_at.isoformat(timespec="seconds"),
                      k.revoked_at.isoformat(timespec="seconds") if k.revoked_at else "")
    Console().print(table)


@app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="the id shown by `list` (sqm_<id>_...)")]) -> None:
    """Revoke a key (within 10 s the API refuses it)."""
    if not _store().revoke(key_id):
        typer.echo(f"no active key {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


if __name__ == "__main__":
    app()
