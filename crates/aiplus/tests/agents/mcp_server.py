"""An MCP server made with the official MCP Python SDK (PyPI `mcp` 2.x), the tool server of
the agents tests.

    python3 mcp_server.py http PORT CALLS_FILE    # streamable HTTP at http://127.0.0.1:PORT/mcp
    python3 mcp_server.py stdio CALLS_FILE        # stdio

One server speaks both spec versions: the SDK picks 2025-11-25 (sessions) or 2026-07-28
(stateless) by the request's MCP-Protocol-Version header. Every tool call is appended to
CALLS_FILE as a line `<tool> <arguments>`, so a test can count what was really called.
"""
import json
import os
import sys
import time

from mcp.server import MCPServer

mcp = MCPServer("aiplus-tests")
CALLS = sys.argv[-1]


def called(tool, **args):
    with open(CALLS, "a", encoding="utf-8") as f:
        f.write(f"{tool} {json.dumps(args, sort_keys=True)}\n")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    called("add", a=a, b=b)
    return a + b


@mcp.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    called("echo", text=text)
    return text


@mcp.tool()
def count(label: str = "") -> str:
    """Record that it was called (a tool with a side effect)."""
    called("count", label=label)
    return "counted"


@mcp.tool()
def slow(seconds: float) -> str:
    """Take a while, then answer."""
    called("slow", seconds=seconds)
    time.sleep(seconds)
    return "slept"


@mcp.tool()
def leak() -> str:
    """Answer with a word the guardrail blocks."""
    called("leak")
    return "the answer is 机密数据"


@mcp.tool()
def peek(path: str) -> str:
    """Read a file (to show what a sandboxed server cannot see)."""
    called("peek", path=path)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "read: " + f.read(64)
    except OSError as e:
        return "unreadable: " + type(e).__name__


@mcp.tool()
def getenv(name: str) -> str:
    """An environment variable of the server's process."""
    called("getenv", name=name)
    return os.environ.get(name, "unset")


@mcp.tool()
def fail() -> str:
    """Always fails."""
    called("fail")
    raise RuntimeError("this tool always fails")


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        mcp.run()
    else:
        mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]), streamable_http_path="/mcp")
