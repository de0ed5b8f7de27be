"""Commands that run or set up the server: ``serve``, ``install``, ``demo``."""

from __future__ import annotations

import click

from codex_mcp.cli.output import emit, output_options
from codex_mcp.cli.running import run, settings_of


@click.command()
@click.option(
    "--instance",
    default=None,
    metavar="ID",
    help="stdio: serve this instance (default: CODEX_MCP_INSTANCE, else the worktree you are in, "
    "else an adhoc instance registered for this folder).",
)
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http", "sse"]),
    default=None,
    help="stdio (one server per agent, the default), http (streamable HTTP at /mcp) or sse (/sse): "
    "one server for many agents, each with its own token.",
)
@click.option(
    "--port", type=int, default=None, help="HTTP port (default: CODEX_MCP_PORT, else 3001; 0: any free)."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (HTTP/SSE).")
@click.option(
    "--allow-remote", is_flag=True, help="Allow a non-loopback --host (every request still needs a token)."
)
@click.option(
    "--operator-token",
    is_flag=True,
    help="HTTP/SSE: print a read-only token for a person (MCP Inspector, conformance suite); off by default.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    instance: str | None,
    transport: str | None,
    port: int | None,
    host: str,
    allow_remote: bool,
    operator_token: bool,
) -> None:
    """Run the MCP server: over stdio (what Claude Code starts for each agent) or HTTP/SSE.

    stdout carries only the MCP protocol in stdio mode; logs always go to stderr.
    """
    settings = settings_of(ctx, instance=instance, transport=transport, port=port)
    from codex_mcp.logs import configure_logging

    configure_logging(settings.log_level)
    if settings.transport == "stdio":
        from codex_mcp.serve import serve_stdio

        run(lambda: serve_stdio(settings))
        return
    from codex_mcp.serve import serve_http

    run(
        lambda: serve_http(
            settings,
            transport=settings.transport,
            host=host,
            allow_remote=allow_remote,
            operator_token=operator_token,
        )
    )


@click.command()
@click.option(
    "--scope",
    type=click.Choice(["project", "user"]),
    default="project",
    show_default=True,
    help="project: this repository's .mcp.json; user: your Claude Code configuration.",
)
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http"]),
    default="stdio",
    show_default=True,
    help="stdio: Claude Code starts `codex-mcp serve`; http: use the shared server.",
)
@click.pass_context
def install(ctx: click.Context, scope: str, transport: str) -> None:
    """Register the codex MCP server with Claude Code (idempotent; prints what it changed)."""
    from codex_mcp.install import install as do_install

    for line in do_install(settings_of(ctx), scope=scope, transport=transport):  # type: ignore[arg-type]
        click.echo(line)


@click.command()
@click.option("--keep", is_flag=True, help="Keep the throwaway repository for inspection.")
@output_options()
def demo(keep: bool, as_json: bool) -> None:
    """Show the review loop end to end on a throwaway repository (no Claude Code, no network).

    A work agent asks for a review, a reviewer works on a snapshot of its work and sends feedback;
    the agents are scripted stand-ins (real MCP clients) in real tmux sessions on a private socket.
    """
    from codex_mcp.demo import print_demo, run_demo

    emit(run(lambda: run_demo(keep=keep)), as_json, print_demo)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Port (0: a free one)."
)
@click.option("--read-only", is_flag=True, help="Show instances and terminals, change nothing.")
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in the web browser.")
@click.option("--allow-remote", is_flag=True, help="Allow --host to be an address other machines reach.")
@click.pass_context
def ui(
    ctx: click.Context, host: str, port: int, read_only: bool, open_browser: bool, allow_remote: bool
) -> None:
    """Serve the web dashboard; the first line printed is the one-time login address to open."""
    from codex_mcp.ui import serve as serve_ui

    serve_ui(
        settings_of(ctx),
        host=host,
        port=port,
        read_only=read_only,
        open_browser=open_browser,
        allow_remote=allow_remote,
    )


COMMANDS: list[click.Command] = [serve, ui, install, demo]
