"""aiplus's launcher for a llama.cpp model server (the xllamacpp wheel's native server).

aiplus runs this as an online-inference job: it loads one GGUF file, listens on the given
address and port with llama.cpp's OpenAI-compatible HTTP server (/health, /v1/models,
/v1/chat/completions, /v1/completions), prints one line saying where, and serves until it is
sent SIGTERM or SIGINT. Everything it needs comes from its arguments; it reads no
configuration of its own.
"""

import argparse
import signal
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the GGUF file")
    ap.add_argument("--alias", required=True, help="the model name the server answers to")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ctx", type=int, default=4096, help="context length in tokens")
    ap.add_argument("--parallel", type=int, default=1, help="requests decoded at once")
    args = ap.parse_args()
    # Signals are waited for below; block them first so none is lost while the model loads.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        import xllamacpp
    except ImportError as e:
        print(f"aiplus-llama: the engine is not installed: {e}", file=sys.stderr, flush=True)
        return 3
    p = xllamacpp.CommonParams()
    p.model.path = args.model
    p.model_alias = {args.alias}
    p.hostnames = [args.host]
    p.port = args.port
    p.n_ctx = args.ctx
    p.n_parallel = args.parallel
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    # The model's own chat template (Jinja), which also renders tools.
    p.use_jinja = True
    server = xllamacpp.Server(p)
    print(f"aiplus-llama: listening {server.listening_address} model {args.alias}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    print("aiplus-llama: stopping", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
