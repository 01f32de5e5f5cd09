"""`lethe api serve` and `lethe api token create|list`: run the HTTP API and hand out its tokens."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lethe import wiring
from lethe.api.auth import Role, default_token_path
from lethe.cli import render
from lethe.cli.errors import friendly_errors
from lethe.settings import Settings

api_app = typer.Typer(help="The HTTP API: legal files requests, auditors read evidence, engineers ask about "
                           "impact.", no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens of the API (kept as SHA-256 digests only).", no_args_is_help=True)
api_app.add_typer(token_app, name="token")
console = render.console
TOKENS_HELP = "token file (default: <state_dir>/api-tokens.json)"



@api_app.command("serve")
@friendly_errors
def serve(port: int = typer.Option(8000, min=1, max=65535, help="port on 127.0.0.1"),
          tokens: Path | None = typer.Option(None, help=TOKENS_HELP)) -> None:
    """Serve the API on 127.0.0.1 (put a TLS proxy in front of it to reach it from elsewhere)."""
    import uvicorn

    from lethe.api import TokenStore, create_app

    settings = wiring.cli_settings()
    store = TokenStore.load(tokens or default_token_path(settings.state_dir))
    app = create_app(settings, store)  # refuses to start without a pepper
    console.print(f"Lethe API on http://127.0.0.1:{port} ({len(store)} token(s)); OpenAPI document at /openapi.json")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="info")


@token_app.command("create")
@friendly_errors
def token_create(role: Role = typer.Option(..., help="legal, auditor or engineer"),
                 name: str = typer.Option(..., help="who or what holds the token, e.g. privacy-ops"),
                 tokens: Path | None = typer.Option(None, help=TOKENS_HELP)) -> None:
    """Create a token of one role; it is printed once and only its digest is kept."""
    from lethe.api.auth import create_token

    path = tokens or default_token_path(Settings().state_dir)
    token = create_token(path, role, name)
    console.print(f"token for {name!r} (role {role.value}), shown only now — store it safely:",
                  highlight=False)
    print(token)
    console.print(f"its digest is in {path}; a running server accepts it from the next request on",
                  highlight=False)


@token_app.command("list")
@friendly_errors
def token_list(tokens: Path | None = typer.Option(None, help=TOKENS_HELP),
               as_json: bool = typer.Option(False, "--json")) -> None:
    """List the tokens' names, roles and creation times (never the tokens)."""
    from lethe.api.auth import TokenStore

    path = tokens or default_token_path(Settings().state_dir)
    TokenStore.load(path)  # refuses a missing, malformed or world-readable file
    entries = sorted(json.loads(path.read_text(encoding="utf-8")).values(),
                     key=lambda entry: entry.get("created_at", ""))
    if as_json:
        print(json.dumps(entries, indent=1))
        return
    table = render.Table(title=f"API tokens in {path}", title_justify="left")
    for column in ("name", "role", "created"):
        table.add_column(column)
    for entry in entries:
        table.add_row(entry["name"], entry["role"], entry.get("created_at", ""))
    console.print(table)
