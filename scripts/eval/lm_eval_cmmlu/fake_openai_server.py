#!/usr/bin/env python3
"""A tiny OpenAI-shaped server for checking what lm_eval sends. Loopback only, stdlib only.

Every request (method, path, headers except Authorization's value, JSON body) is appended to
--log as one JSON line. POST .../completions answers {"choices":[{"text": ANSWER}]}, POST
.../chat/completions answers {"choices":[{"message":{"content": ANSWER}}]}, GET .../models lists
--model; anything else is 404. It stops by itself after --max-requests requests or
--max-seconds seconds, whichever comes first.

    python3 fake_openai_server.py --port 0 --answer B --log /tmp/reqs.jsonl --port-file /tmp/port
"""

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--port-file", help="write the chosen port here once listening")
    ap.add_argument("--answer", default="B", help="the text every completion answers")
    ap.add_argument("--model", default="fake-model")
    ap.add_argument("--log", required=True, help="JSONL file the requests are appended to")
    ap.add_argument("--max-requests", type=int, default=5000)
    ap.add_argument("--max-seconds", type=float, default=1800)
    args = ap.parse_args()

    count = {"n": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet
            pass

        def _record(self, body):
            headers = {k: ("Bearer <redacted>" if k.lower() == "authorization" else v) for k, v in self.headers.items()}
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = {"_unparsed": body.decode("utf-8", "replace")}
            entry = {"method": self.command, "path": self.path, "headers": headers,
                     "authorization_present": "authorization" in {k.lower() for k in self.headers},
                     "body": parsed}
            with lock:
                count["n"] += 1
                with open(args.log, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry, ensure_ascii=False) + "\n")
            return parsed

        def _send(self, code, obj):
            data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._record(b"")
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": args.model, "object": "model", "owned_by": "fake"}]})
            else:
                self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            req = self._record(body) or {}
            now = int(time.time())
            usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            path = self.path.split("?")[0].rstrip("/")
            if path.endswith("/chat/completions"):
                self._send(200, {"id": "chatcmpl-fake", "object": "chat.completion", "created": now,
                                 "model": req.get("model", args.model),
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": args.answer}}],
                                 "usage": usage})
            elif path.endswith("/completions"):
                prompts = req.get("prompt")
                n = len(prompts) if isinstance(prompts, list) and prompts and isinstance(prompts[0], str) else 1
                self._send(200, {"id": "cmpl-fake", "object": "text_completion", "created": now,
                                 "model": req.get("model", args.model),
                                 "choices": [{"index": i, "text": args.answer, "finish_reason": "stop", "logprobs": None}
                                             for i in range(n)],
                                 "usage": usage})
            else:
                self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.port_file:
        with open(args.port_file, "w") as f:
            f.write(str(server.server_address[1]))
    deadline = time.monotonic() + args.max_seconds
    server.timeout = 0.5
    while time.monotonic() < deadline and count["n"] < args.max_requests:
        server.handle_request()
    server.server_close()


if __name__ == "__main__":
    main()
