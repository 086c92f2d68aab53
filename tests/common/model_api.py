"""Stand-ins for the model APIs the coding agents speak, for the end-to-end
tests (tests/agents_e2e/): Anthropic's Messages API (Claude Code), OpenAI's
Responses API (Codex) and Chat Completions (Aider through litellm, OpenCode
and Kilo Code through their OpenAI-compatible provider), and the Gemini API
(Gemini CLI), streamed or not, as each client asks.

usage: model_api.py ADDRESS LOG [CERT KEY [HTTPS_PORT]]
Serves HTTP on ADDRESS, any free port, and HTTPS with CERT and KEY (on
HTTPS_PORT, else any free port), as the real APIs do and for clients that
take only an https:// base URL; prints "http=PORT https=PORT" (0 without
HTTPS) once listening, then serves until killed or its stdin closes. Every
request is appended to LOG as one JSON line (method, path, headers, body)
before it is answered, so a test can assert what arrived.

The conversation: when a request offers a shell tool (Claude Code's `Bash`;
Codex's `exec` of code mode, or a plain `shell`/`exec_command` function) and
no tool result has come back yet, the answer is a call of that tool running
COMMAND, which writes hello.txt and commits it. Every other request, the one
carrying the tool's result included, is answered with the text REPLY (or,
asked for JSON, an object of its schema with REPLY in its strings).
"""

import http.server
import json
import ssl
import sys
import threading
import time

REPLY = "STUB-DONE"
COMMAND = "printf hi > hello.txt && git add hello.txt && git commit -q -m 'add hello'"
LOCK = threading.Lock()


class Api(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.handle_request(None)

    def do_HEAD(self):
        self.handle_request(None)

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = {"unparsed": raw.decode("utf-8", "replace")}
        self.handle_request(body)

    def handle_request(self, body):
        path = self.path.split("?")[0]
        record = {
            "method": self.command,
            "path": self.path,
            "scheme": self.server.scheme,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        with LOCK, open(self.server.log, "a") as log:
            log.write(json.dumps(record) + "\n")
        body = body if isinstance(body, dict) else {}
        if self.headers.get("upgrade"):
            # Codex tries a WebSocket first and falls back to HTTP.
            self.json({"error": {"message": "no WebSocket here", "type": "upgrade_refused"}}, 426)
        elif path.endswith("/messages/count_tokens"):
            self.json({"input_tokens": 12})
        elif path.endswith("/messages"):
            anthropic(self, body)
        elif path.endswith("/responses"):
            responses(self, body)
        elif path.endswith("/chat/completions"):
            chat(self, body)
        elif ":streamGenerateContent" in path:
            gemini(self, body, stream=True)
        elif ":generateContent" in path:
            gemini(self, body, stream=False)
        elif ":countTokens" in path:
            self.json({"totalTokens": 12})
        elif path in ("/api/hello", "/v1/oauth/hello"):
            # Claude Code's connectivity check on its first screen, of the
            # API's host and its login's (platform.claude.com).
            self.json({"message": "hello"})
        elif path.endswith("/models"):
            self.json({"object": "list", "data": [{"id": "stub-model", "object": "model", "created": 0, "owned_by": "stub"}], "models": []})
        else:
            self.json({"error": {"message": f"the stub has no {path}", "type": "not_found"}}, 404)

    def json(self, value, status=200):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def sse(self, events):
        """Server-sent events: (name or None, data) pairs, then the end."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        for name, data in events:
            chunk = ""
            if name:
                chunk += f"event: {name}\n"
            chunk += f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
            self.wfile.write(chunk.encode())
            self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


def texts(value):
    """Every string anywhere in a JSON value, for looking for a tool result."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from texts(v)


def types_in(value):
    """Every `type` field anywhere in a JSON value."""
    if isinstance(value, dict):
        if isinstance(value.get("type"), str):
            yield value["type"]
        for v in value.values():
            yield from types_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from types_in(v)


# --- Anthropic Messages (Claude Code) ---------------------------------------


def anthropic(handler, body):
    model = body.get("model", "stub-model")
    tools = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
    answered = "tool_result" in set(types_in(body.get("messages")))
    if "Bash" in tools and not answered:
        block = {
            "type": "tool_use",
            "id": "toolu_stub_1",
            "name": "Bash",
            "input": {"command": COMMAND, "description": "Write hello.txt and commit it"},
        }
        stop = "tool_use"
    else:
        block = {"type": "text", "text": REPLY}
        stop = "end_turn"
    usage = {"input_tokens": 12, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    message = {
        "id": f"msg_stub_{int(time.time() * 1000)}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }
    if not body.get("stream"):
        handler.json(message)
        return
    start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
    if block["type"] == "text":
        opened = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": REPLY}
    else:
        opened = dict(block, input={})
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    handler.sse(
        [
            ("message_start", {"type": "message_start", "message": start}),
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": opened}),
            ("ping", {"type": "ping"}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 5}},
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
    )


# --- OpenAI Responses (Codex) -----------------------------------------------

SHELL_TOOLS = ("shell", "exec_command", "shell_command", "exec")


def tools_offered(value):
    """Every tool a Responses request offers by name: in `tools`, and in the
    `additional_tools` items (namespaces of tools) Codex puts in `input`."""
    found = {}
    if isinstance(value, dict):
        if value.get("type") in ("function", "custom") and isinstance(value.get("name"), str):
            found[value["name"]] = value
        for v in value.values():
            found.update(tools_offered(v))
    elif isinstance(value, list):
        for v in value:
            found.update(tools_offered(v))
    return found


def responses(handler, body):
    model = body.get("model", "stub-model")
    tools = tools_offered([body.get("tools"), body.get("input")])
    answered = any(t.endswith("_call_output") for t in types_in(body.get("input")))
    shell = next((name for name in SHELL_TOOLS if name in tools), None)
    stamp = int(time.time() * 1000)
    if shell == "exec" and not answered:
        # Codex's code mode: JavaScript that calls its nested tools.
        item = {
            "type": "custom_tool_call",
            "id": f"ctc_stub_{stamp}",
            "call_id": f"call_stub_{stamp}",
            "name": "exec",
            "input": f"const r = await tools.exec_command({{cmd: {json.dumps(COMMAND)}}});\ntext(r.output);\n",
            "status": "completed",
        }
    elif shell and not answered:
        if shell == "exec_command":
            arguments = {"cmd": COMMAND}
        elif shell == "shell_command":
            arguments = {"command": COMMAND}
        else:
            arguments = {"command": ["bash", "-lc", COMMAND]}
        item = {
            "type": "function_call",
            "id": f"fc_stub_{stamp}",
            "call_id": f"call_stub_{stamp}",
            "name": shell,
            "arguments": json.dumps(arguments),
            "status": "completed",
        }
    else:
        item = {
            "type": "message",
            "id": f"msg_stub_{stamp}",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": REPLY, "annotations": []}],
        }
    usage = {
        "input_tokens": 12,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 17,
    }
    response = {
        "id": f"resp_stub_{stamp}",
        "object": "response",
        "created_at": stamp // 1000,
        "model": model,
        "status": "completed",
        "output": [item],
        "usage": usage,
    }
    if not body.get("stream"):
        handler.json(response)
        return
    created = dict(response, status="in_progress", output=[], usage=None)
    events = [
        ("response.created", {"type": "response.created", "sequence_number": 0, "response": created}),
        ("response.output_item.added", {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": dict(item, status="in_progress")}),
    ]
    if item["type"] == "message":
        events += [
            (
                "response.output_text.delta",
                {"type": "response.output_text.delta", "sequence_number": 2, "item_id": item["id"], "output_index": 0, "content_index": 0, "delta": REPLY},
            ),
            (
                "response.output_text.done",
                {"type": "response.output_text.done", "sequence_number": 3, "item_id": item["id"], "output_index": 0, "content_index": 0, "text": REPLY},
            ),
        ]
    events += [
        ("response.output_item.done", {"type": "response.output_item.done", "sequence_number": 4, "output_index": 0, "item": item}),
        ("response.completed", {"type": "response.completed", "sequence_number": 5, "response": response}),
    ]
    handler.sse(events)


# --- OpenAI Chat Completions (Aider, OpenCode, Kilo Code) -------------------


def chat(handler, body):
    model = body.get("model", "stub-model")
    stamp = int(time.time() * 1000)
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    if not body.get("stream"):
        handler.json(
            {
                "id": f"chatcmpl-stub-{stamp}",
                "object": "chat.completion",
                "created": stamp // 1000,
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}],
                "usage": usage,
            }
        )
        return

    def chunk(delta, finish=None, with_usage=False):
        value = {
            "id": f"chatcmpl-stub-{stamp}",
            "object": "chat.completion.chunk",
            "created": stamp // 1000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if with_usage:
            value["usage"] = usage
        return (None, value)

    handler.sse(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": REPLY}),
            chunk({}, "stop", with_usage=True),
            (None, "[DONE]"),
        ]
    )


# --- Gemini (Gemini CLI) ----------------------------------------------------


def example(schema):
    """A value that fits a JSON schema (OpenAPI's upper-case types too)."""
    schema = schema if isinstance(schema, dict) else {}
    kind = str(schema.get("type", "object")).lower()
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object":
        return {name: example(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return False
    return REPLY


def gemini(handler, body, stream):
    config = body.get("generationConfig") or {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    # Gemini CLI asks a small model to route each prompt, for JSON.
    text = json.dumps(example(schema)) if schema else REPLY
    value = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 5, "totalTokenCount": 17},
        "modelVersion": "stub-model",
    }
    if stream:
        handler.sse([(None, value)])
    else:
        handler.json(value)


def serve(address, port, log, scheme, context=None):
    server = http.server.ThreadingHTTPServer((address, port), Api)
    server.daemon_threads = True
    server.scheme = scheme
    server.log = log
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def main():
    address, log = sys.argv[1:3]
    http_port = serve(address, 0, log, "http")
    https_port = 0
    if len(sys.argv) > 4:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[3], sys.argv[4])
        wanted = int(sys.argv[5]) if len(sys.argv) > 5 else 0
        https_port = serve(address, wanted, log, "https", context)
    print(f"http={http_port} https={https_port}", flush=True)
    # Until the test binary that started it is gone: it holds the other end.
    sys.stdin.read()


main()
