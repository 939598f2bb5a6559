"""An MCP server for agent-app's tests, built on the official Python SDK (PyPI `mcp`).

    python test_server.py stdio
    python test_server.py http PORT TOKENS     # TOKENS: "token=name,token=name"; others get 401

Tools: add, whoami (who the bearer token belongs to), get_current_time (a name the agent already
has), slow, fail.
"""

import asyncio
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

TOKENS: dict[str, str] = {}

mcp = MCPServer("agent-app-test")


@mcp.tool(description="Add two integers.")
def add(a: int, b: int) -> int:
    return a + b


@mcp.tool(description="Who is calling: the name the bearer token belongs to.")
def whoami(ctx: Context) -> str:
    headers = ctx.headers
    if headers is None:
        return "stdio"
    token = headers.get("authorization", "").removeprefix("Bearer ")
    return TOKENS.get(token, "anonymous")


@mcp.tool(description="The server's clock (same name as the agent's own tool).")
def get_current_time() -> str:
    return "server time"


@mcp.tool(description="Wait, then answer.")
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return f"waited {seconds}s"


@mcp.tool(description="Always fails.")
def fail() -> str:
    raise ToolError("this tool always fails")


@mcp.tool(description="A tool behind a Databricks connection the user has not signed in to.")
def sign_in_required(connection: str) -> str:
    # The error Databricks gives for a per-user OAuth connection without the user's credential.
    raise ToolError(
        f"Credential for user identity('ana@example.com') is not found for the connection '{connection}'. "
        f"Please login first to the connection by visiting https://workspace.example.com/explore/connections/{connection}"
    )


def bearer_required(app):
    """Refuses requests without one of the known tokens, as a Databricks MCP endpoint does."""

    async def guarded(scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            token = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
            if TOKENS and token not in TOKENS:
                await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"invalid token"})
                return
        await app(scope, receive, send)

    return guarded


def main() -> None:
    if sys.argv[1] == "stdio":
        mcp.run("stdio")
        return
    port = int(sys.argv[2])
    for pair in filter(None, (sys.argv[3] if len(sys.argv) > 3 else "").split(",")):
        token, name = pair.split("=", 1)
        TOKENS[token] = name
    import uvicorn

    app = bearer_required(mcp.streamable_http_app())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
