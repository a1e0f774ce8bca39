"""The official openai Python SDK against the chat model a fresh `aiplus serve` deploys by itself.

Usage: python3 default_model.py BASE_URL API_KEY MODEL WAIT_S. Until the model's replica runs
(on a fresh machine its weights are downloaded first), requests for it get 503 model_loading;
the script waits up to WAIT_S for it, then checks a Chinese chat (whole and streamed) and a
tools request. It prints how many 503 answers it saw while waiting.
"""
import json
import re
import sys
import time

import openai

base, key, model, wait_s = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=300)

ids = [m.id for m in client.models.list().data]
assert model in ids, ids

cjk = re.compile(r"[\u4e00-\u9fff]")
question = [{"role": "user", "content": "用一句话介绍北京。"}]
deadline = time.time() + wait_s
loading = 0
while True:
    try:
        r = client.chat.completions.create(model=model, messages=question, max_tokens=64, temperature=0)
        break
    except openai.APIStatusError as e:
        # Only "loading" is an acceptable answer while the replica starts.
        assert e.status_code == 503 and "model_loading" in str(e.body), (e.status_code, e.body)
        loading += 1
        if time.time() > deadline:
            raise
        time.sleep(2)

text = r.choices[0].message.content
assert len(cjk.findall(text)) >= 4, f"not a Chinese answer: {text!r}"
assert r.usage.completion_tokens > 0, r.usage

chunks = list(client.chat.completions.create(model=model, messages=question, max_tokens=64, temperature=0, stream=True))
streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
assert len(chunks) > 3, chunks
assert len(cjk.findall(streamed)) >= 4, f"not a Chinese answer: {streamed!r}"

tools = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "查询一个城市今天的天气",
            "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "城市名"}}, "required": ["city"]},
        },
    }
]
r = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "北京今天天气怎么样？"}], tools=tools, max_tokens=128, temperature=0
)
calls = r.choices[0].message.tool_calls
assert calls, f"no tool call: {r}"
assert calls[0].function.name == "get_weather", calls
assert isinstance(json.loads(calls[0].function.arguments), dict), calls
assert r.choices[0].finish_reason == "tool_calls", r

print(f"default-model: ok after {loading} loading answers; {text!r}; {streamed!r}; {calls[0].function.arguments}")
