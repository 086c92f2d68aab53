"""Drives `sandbox mcp` as an agent would, with the official MCP Python SDK
(`mcp` from PyPI, pinned in requirements.txt), or with raw JSON-RPC lines
where the point is what a client library would never send.

    driver.py SCENARIO TRANSPORT      (TRANSPORT: stdio or http)

tests/mcp.rs runs it with SANDBOX_BIN (the binary under test) and
SANDBOX_WORKSPACE (a workspace whose containers its guard checks) in the
environment, and a configuration that maps every command to the test
image. A scenario fails with an assertion; exit status 0 means it passed.
Every wait is bounded.
"""

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

SANDBOX = os.environ["SANDBOX_BIN"]
WORKSPACE = os.environ["SANDBOX_WORKSPACE"]
TOKEN = "test-token-0123456789abcdef"
# The server's error codes (src/mcp/tools/mod.rs) and JSON-RPC's.
FAILED, TIMED_OUT, STOPPED = -32000, -32001, -32003
INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR = -32602, -32600, -32700
# How long any one scenario may take.
SCENARIO_LIMIT = 150


def containers():
    """Ids of the containers sandbox made for the workspace, less the warm
    ones waiting for a command (they are meant to outlive a run)."""
    out = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=dev.sandbox.workspace={WORKSPACE}",
         "--format", "{{.ID}} {{.Names}}"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout
    return [line.split()[0] for line in out.splitlines() if "sandbox-warm-" not in line]


async def until(predicate, what, limit=30):
    """Waits until predicate() is true, or fails saying `what`."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await anyio.sleep(0.2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_args(extra):
    return ["mcp", "--workspace", WORKSPACE, *extra]


class HttpServer:
    """`sandbox mcp --listen` on a free loopback port, as a process of ours."""

    def __init__(self, extra=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.proc = subprocess.Popen(
            [SANDBOX, *server_args(["--listen", f"127.0.0.1:{self.port}", *extra])],
            env={**os.environ, "SANDBOX_MCP_TOKEN": TOKEN},
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, "the server exited at start"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
                break
            assert time.monotonic() < deadline, "the server never listened"
            time.sleep(0.1)

    def stop(self):
        """SIGTERM, and the server must exit 0 within its own bounds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0, f"the server exited with {self.proc.returncode}"


@contextlib.asynccontextmanager
async def session(transport, extra=(), token=TOKEN):
    """An initialized client session with a fresh server."""
    if transport == "stdio":
        params = StdioServerParameters(command=SANDBOX, args=server_args(extra), env=dict(os.environ))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            yield client
        return
    server = HttpServer(extra)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        async with create_mcp_http_client(headers=headers) as http, \
                streamable_http_client(server.url, http_client=http) as (read, write), \
                ClientSession(read, write) as client:
            await client.initialize()
            yield client
    finally:
        server.stop()


async def run(client, command, **arguments):
    result = await client.call_tool("run", {"command": command, **arguments})
    assert not result.is_error, result
    return result.structured_content


class Failure:
    """How a call failed: a tool error (`isError`, with the server's code
    and message in its structured content when the server made it, none
    when the SDK's schema check or rmcp's did) or a protocol error."""

    def __init__(self, code, message, data=None, protocol=False):
        self.code, self.message, self.data, self.protocol = code, message, data or {}, protocol

    def __repr__(self):
        return f"Failure(code={self.code}, message={self.message!r}, protocol={self.protocol})"


async def error_of(call):
    """How `call` fails: it must fail."""
    try:
        result = await call
    except MCPError as e:
        return Failure(e.error.code, e.error.message, e.error.data, protocol=True)
    assert result.is_error, f"no error: {result}"
    data = result.structured_content or {}
    error = data.get("error", {})
    return Failure(error.get("code"), error.get("message") or result.content[0].text, data)


# --- scenarios -------------------------------------------------------------

async def scenario_basics(transport):
    async with session(transport) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == {"run", "read_file", "write_file", "list_dir", "search"}, tools
        for tool in tools.values():
            assert tool.description and len(tool.description) > 40, tool
            assert tool.input_schema["type"] == "object", tool
        assert "command" in tools["run"].input_schema["required"]

        out = await run(client, ["echo", "hello", "world"])
        assert out["exit_code"] == 0 and out["stdout"] == "hello world\n", out
        assert out["duration_ms"] > 0 and not out["truncated"], out
        out = await run(client, "echo out; echo err >&2; exit 3")
        assert (out["exit_code"], out["stdout"], out["stderr"]) == (3, "out\n", "err\n"), out
        out = await run(client, ["cat"], stdin="fed\nin\n")
        assert out["stdout"] == "fed\nin\n", out
        # The words are the command's: never sandbox's flags.
        out = await run(client, ["echo", "--keep", "--image", "x", "--"])
        assert out["stdout"] == "--keep --image x --\n", out
        out = await run(client, ["pwd"])
        assert out["stdout"] == "/work\n", out
        out = await run(client, ["no-such-command"])
        assert out["exit_code"] == 127, out
        # A missing image is sandbox's failure, said in one line.
        err = await error_of(client.call_tool("run", {"command": ["true"], "image": "sandbox-test/none:0"}))
        assert err.code == FAILED and err.message.startswith("sandbox: "), err
        assert "\n" not in err.message, err

        # What a run writes, the file tools see, and the other way round.
        await run(client, "mkdir -p made && echo from-run > made/by-run.txt")
        text = (await client.call_tool("read_file", {"path": "made/by-run.txt"})).content[0].text
        assert text == "from-run\n", text
        written = await client.call_tool("write_file", {"path": "new/dir/note.md", "content": "# hi\n"})
        assert not written.is_error, written
        out = await run(client, ["cat", "/work/new/dir/note.md"])
        assert out["stdout"] == "# hi\n", out
        listing = (await client.call_tool("list_dir", {"path": "new/dir"})).content[0].text
        assert "note.md  (5 bytes)" in listing, listing
        found = (await client.call_tool("search", {"pattern": "^# h", "glob": "*.md"})).content[0].text
        assert found == "new/dir/note.md:1: # hi", found
        text = (await client.call_tool("read_file", {"path": "/work/new/dir/note.md"})).content[0].text
        assert text == "# hi\n", text


async def scenario_timeout(transport):
    async with session(transport) as client:
        started = time.monotonic()
        err = await error_of(client.call_tool(
            "run", {"command": "echo before; sleep 60", "timeout_seconds": 1}))
        assert err.code == TIMED_OUT and "time limit of 1s" in err.message, err
        assert err.data["exit_code"] == 124 and err.data["stdout"] == "before\n", err.data
        assert time.monotonic() - started < 30
        assert containers() == [], "a container outlived its time limit"


async def scenario_cancel(transport):
    async with session(transport) as client:
        progressed = anyio.Event()

        async def progress(progress, total, message):
            progressed.set()

        async def long_call():
            await client.call_tool("run", {"command": ["sleep", "120"]}, progress_callback=progress)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(long_call)
                # Progress comes while the command runs.
                await progressed.wait()
                await until(lambda: len(containers()) == 1, "the call's container")
                # Cancelling the task sends notifications/cancelled.
                group.cancel_scope.cancel()
        await until(lambda: containers() == [], "the cancelled call's container to go")
        # The server goes on serving.
        out = await run(client, ["echo", "still here"])
        assert out["stdout"] == "still here\n", out


async def scenario_concurrent(transport):
    async with session(transport, ["--max-concurrent", "10"]) as client:
        results = {}

        async def one(i):
            results[i] = await run(client, f"sleep 1; echo call {i}")

        started = time.monotonic()
        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                for i in range(10):
                    group.start_soon(one, i)
        elapsed = time.monotonic() - started
        for i in range(10):
            assert results[i]["stdout"] == f"call {i}\n" and results[i]["exit_code"] == 0, results[i]
        print(f"ten concurrent calls took {elapsed:.1f}s", file=sys.stderr)
    assert containers() == []


async def scenario_files_refuse(transport):
    secret_dir = os.path.dirname(WORKSPACE)
    secret = os.path.join(secret_dir, "outside-secret.txt")
    with open(secret, "w") as f:
        f.write("SECRET\n")
    os.symlink(secret_dir, os.path.join(WORKSPACE, "up"))
    os.symlink(secret, os.path.join(WORKSPACE, "secret-link"))
    os.makedirs(os.path.join(WORKSPACE, ".git", "hooks"))
    with open(os.path.join(WORKSPACE, ".git", "config"), "w") as f:
        f.write("[core]\n")
    try:
        async with session(transport) as client:
            for tool, args in [
                ("read_file", {"path": "../outside-secret.txt"}),
                ("read_file", {"path": secret}),
                ("read_file", {"path": "a\x00b"}),
                ("write_file", {"path": "../escape.txt", "content": "x"}),
                ("list_dir", {"path": ".."}),
                ("search", {"pattern": "SECRET", "path": "../"}),
            ]:
                err = await error_of(client.call_tool(tool, args))
                assert err.code == INVALID_PARAMS and "refused" in err.message, (tool, args, err)
            for tool, args in [
                ("read_file", {"path": "up/outside-secret.txt"}),
                ("read_file", {"path": "secret-link"}),
                ("write_file", {"path": "up/planted.txt", "content": "x"}),
                ("write_file", {"path": "secret-link", "content": "x"}),
                ("list_dir", {"path": "up"}),
                ("search", {"pattern": "SECRET", "path": "up"}),
            ]:
                err = await error_of(client.call_tool(tool, args))
                assert err.code == FAILED and ("link" in err.message), (tool, args, err)
            for path in [".git/config", ".git/hooks/pre-commit", ".sandbox.yml", ".vscode/tasks.json",
                         "sub/.git/config"]:
                err = await error_of(client.call_tool("write_file", {"path": path, "content": "x"}))
                assert err.code == FAILED and "protected" in err.message, (path, err)
            # Nothing followed a link: the outside is as it was.
            assert open(secret).read() == "SECRET\n"
            assert not os.path.exists(os.path.join(secret_dir, "planted.txt"))
            assert not os.path.exists(os.path.join(WORKSPACE, ".git", "hooks", "pre-commit"))
            # A search of the whole workspace passes links over.
            found = (await client.call_tool("search", {"pattern": "SECRET"})).content[0].text
            assert found == "no match", found
            listing = (await client.call_tool("list_dir", {})).content[0].text
            assert "secret-link -> " in listing and "(link, not followed)" in listing, listing
            # Bad arguments are tool errors the model can read, and the
            # server keeps serving.
            for tool, args in [
                ("read_file", {}),
                ("read_file", {"path": 3}),
                ("run", {"command": ["true"], "surprise": 1}),
            ]:
                err = await error_of(client.call_tool(tool, args))
                assert not err.protocol and "parameters" in err.message, (tool, args, err)
            for tool, args in [
                ("run", {"command": []}),
                ("run", {"command": "  "}),
                ("run", {"command": ["true"], "timeout_seconds": 0}),
                ("search", {"pattern": "("}),
            ]:
                err = await error_of(client.call_tool(tool, args))
                assert err.code == INVALID_PARAMS and not err.protocol, (tool, args, err)
            # An unknown tool is no call of a tool: a protocol error.
            err = await error_of(client.call_tool("no_such_tool", {}))
            assert err.protocol and err.code == INVALID_PARAMS, err
            out = await run(client, ["true"])
            assert out["exit_code"] == 0
    finally:
        os.unlink(secret)


async def scenario_output_cap(transport):
    async with session(transport, ["--max-output", "1k"]) as client:
        out = await run(client, "yes 0123456789 | head -c 100000; echo tail-end")
        assert out["truncated"] and out["stdout_bytes"] == 100009, out
        assert len(out["stdout"]) < 1200, len(out["stdout"])
        assert "[sandbox: output cut: 100009 bytes in all" in out["stdout"], out["stdout"]
        assert out["stdout"].startswith("0123456789\n") and out["stdout"].endswith("tail-end\n")


async def scenario_shutdown(transport):
    """Calls in flight when the server is told to stop: SIGTERM (http and
    stdio) or the end of stdin (stdio). Every container goes; the server
    exits 0."""
    if transport == "http":
        server = HttpServer()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with anyio.fail_after(90):
            async with create_mcp_http_client(headers=headers) as http, \
                    streamable_http_client(server.url, http_client=http) as (read, write), \
                    ClientSession(read, write) as client:
                await client.initialize()
                errors = []

                async def long_call():
                    try:
                        await client.call_tool("run", {"command": ["sleep", "120"]})
                    except Exception as e:  # the answer, or the connection closing
                        errors.append(e)

                async with anyio.create_task_group() as group:
                    for _ in range(3):
                        group.start_soon(long_call)
                    await until(lambda: len(containers()) == 3, "three containers")
                    started = time.monotonic()
                    await anyio.to_thread.run_sync(server.stop)
                    assert time.monotonic() - started < 30
                    group.cancel_scope.cancel()
        assert containers() == [], containers()
        return
    for how in ["sigterm", "eof"]:
        raw = RawStdio()
        raw.initialize()
        for i in range(3):
            raw.send({"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call",
                      "params": {"name": "run", "arguments": {"command": ["sleep", "120"]}}})
        await until(lambda: len(containers()) == 3, "three containers")
        if how == "sigterm":
            raw.proc.send_signal(signal.SIGTERM)
            # The calls are answered before the server goes: stopped.
            for _ in range(3):
                answer = raw.receive()
                assert answer["result"]["isError"], answer
                assert answer["result"]["structuredContent"]["error"]["code"] == STOPPED, answer
        else:
            raw.proc.stdin.close()
        assert raw.proc.wait(60) == 0, f"{how}: the server exited with {raw.proc.returncode}"
        assert containers() == [], (how, containers())


async def scenario_malformed(transport):
    """What no client library sends: broken lines, JSON that is no message,
    unknown methods. Each is answered; the server keeps serving."""
    raw = RawStdio()
    raw.proc.stdin.write(b"{this is not json\n")
    raw.proc.stdin.flush()
    answer = raw.receive()
    assert answer["error"]["code"] == PARSE_ERROR and answer["id"] is None, answer
    raw.initialize()
    raw.proc.stdin.write(b"[1, 2, 3]\n")
    raw.proc.stdin.flush()
    answer = raw.receive()
    assert answer["error"]["code"] == INVALID_REQUEST, answer
    raw.send({"jsonrpc": "2.0", "id": 7, "method": "no/such/method"})
    answer = raw.receive()
    assert answer["id"] == 7 and answer["error"]["code"] == -32601, answer
    raw.send({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "run"}})
    answer = raw.receive()
    assert answer["id"] == 8 and answer["result"]["isError"], answer
    raw.send({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "nope", "arguments": {}}})
    answer = raw.receive()
    assert answer["id"] == 9 and answer["error"]["code"] == INVALID_PARAMS, answer
    raw.send({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
              "params": {"name": "run", "arguments": {"command": ["echo", "ok"]}}})
    answer = raw.receive()
    assert answer["id"] == 10 and answer["result"]["structuredContent"]["stdout"] == "ok\n", answer
    raw.proc.stdin.close()
    assert raw.proc.wait(30) == 0


async def scenario_token(transport):
    server = HttpServer()
    try:
        request = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"}}}
        # A connection each: a server may close one after refusing a request
        # whose body it did not read, and a pooled connection reused just
        # then fails with no answer at all.
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
                   "Connection": "close"}
        async with create_mcp_http_client() as http:
            for auth in [None, "Bearer wrong-token-0123456789ab", f"Basic {TOKEN}", f"Bearer {TOKEN}x"]:
                sent = dict(headers)
                if auth:
                    sent["Authorization"] = auth
                response = await http.post(server.url, json=request, headers=sent)
                assert response.status_code == 401, (auth, response.status_code)
            sent = {**headers, "Authorization": f"Bearer {TOKEN}"}
            response = await http.post(server.url, json=request, headers=sent)
            assert response.status_code == 200, response.status_code
            # A browser's request (it carries an Origin) is refused too, and
            # so is one for another host name (DNS rebinding).
            response = await http.post(server.url, json=request, headers={**sent, "Origin": "http://evil.test"})
            assert response.status_code == 403, response.status_code
            response = await http.post(server.url, json=request, headers={**sent, "Host": "evil.test"})
            assert response.status_code == 403, response.status_code
        # The SDK with a wrong token gets nowhere.
        with anyio.fail_after(30):
            try:
                async with create_mcp_http_client(headers={"Authorization": "Bearer nope-nope-nope-nope"}) as http, \
                        streamable_http_client(server.url, http_client=http) as (read, write), \
                        ClientSession(read, write) as client:
                    await client.initialize()
                raise AssertionError("initialized with a wrong token")
            except AssertionError:
                raise
            except Exception:
                pass
    finally:
        server.stop()


class RawStdio:
    """The server over stdio with JSON-RPC written by hand."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [SANDBOX, *server_args([])], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self.pending = b""

    def send(self, message):
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def receive(self, limit=60):
        """The next message that is not a notification (an error without an
        id included), within `limit` seconds."""
        deadline = time.monotonic() + limit
        while True:
            while b"\n" not in self.pending:
                left = deadline - time.monotonic()
                ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
                assert ready, "no answer from the server"
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                assert chunk, "the server closed stdout"
                self.pending += chunk
            line, self.pending = self.pending.split(b"\n", 1)
            message = json.loads(line)
            if "id" in message or "error" in message:
                return message

    def initialize(self):
        self.send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}})
        answer = self.receive()
        assert answer["result"]["serverInfo"]["name"] == "sandbox", answer
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


async def main():
    scenario, transport = sys.argv[1], sys.argv[2]
    with anyio.fail_after(SCENARIO_LIMIT):
        await globals()[f"scenario_{scenario}"](transport)
    print(f"{scenario} over {transport}: passed", file=sys.stderr)


if __name__ == "__main__":
    anyio.run(main)
