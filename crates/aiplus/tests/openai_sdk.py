"""The official openai Python SDK against a running aiplus gateway.

Usage: python3 openai_sdk.py BASE_URL API_KEY. The gateway's model "qwen" is served by the
gateway's test double upstream (see crates/gateway/src/test_double.rs).
"""
import sys

import openai

base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)

models = [m.id for m in client.models.list().data]
assert models == ["qwen"], models

r = client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "hi"}])
assert r.choices[0].message.content == "hello from ok", r
assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (11, 3), r.usage

chunks = list(
    client.chat.completions.create(
        model="qwen",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
)
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
assert text == "hello", text
assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 2, chunks[-1]

c = client.completions.create(model="qwen", prompt="say hello")
assert c.choices[0].text == "hello from ok" and c.usage.completion_tokens == 3, c

try:
    client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    raise SystemExit("expected NotFoundError")
except openai.NotFoundError as e:
    assert e.code == "model_not_found", e

try:
    openai.OpenAI(base_url=base + "/v1", api_key="ak_wrong", max_retries=0).models.list()
    raise SystemExit("expected AuthenticationError")
except openai.AuthenticationError as e:
    assert e.code == "invalid_api_key", e

print("openai-sdk: ok")
