"""The official openai Python SDK against a running aiplus gateway.

Usage: python3 openai_sdk.py BASE_URL API_KEY. The gateway's model "qwen" is served by the
gateway's test double upstream (see crates/gateway/src/test_double.rs).
"""
import sys

import openai

base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)

models = [m.id for m in client.models.list().data]
assert models == ["qwen", "qwen-tools", "small-tools", "all-MiniLM-L6-v2"], models

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

# Tools are passed through, and the upstream's tool call comes back.
tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
r = client.chat.completions.create(model="qwen-tools", messages=[{"role": "user", "content": "find"}], tools=tools)
call = r.choices[0].message.tool_calls[0]
assert (call.function.name, call.function.arguments) == ("lookup", '{"q":"hub"}'), r

# A small model that writes its call as text in a fenced block: the gateway turns it into
# tool_calls, whole and streamed (the SDK joins the streamed deltas).
r = client.chat.completions.create(model="small-tools", messages=[{"role": "user", "content": "find"}], tools=tools)
call = r.choices[0].message.tool_calls[0]
assert (call.function.name, call.function.arguments) == ("lookup", '{"q":"hub"}'), r
assert r.choices[0].message.content is None and r.choices[0].finish_reason == "tool_calls", r
deltas = [c.choices[0].delta for c in client.chat.completions.create(model="small-tools", messages=[{"role": "user", "content": "find"}], tools=tools, stream=True) if c.choices]
calls = [tc for d in deltas for tc in (d.tool_calls or [])]
assert [(tc.function.name, tc.function.arguments) for tc in calls] == [("lookup", '{"q":"hub"}')], deltas
assert not any(d.content for d in deltas), deltas
# Without tools the same text is the answer, untouched.
r = client.chat.completions.create(model="small-tools", messages=[{"role": "user", "content": "find"}])
assert r.choices[0].message.content.startswith("```json") and not r.choices[0].message.tool_calls, r

# Responses: create, retrieve, stream with typed events, function calls, follow-ups.
resp = client.responses.create(model="qwen", input="hi", instructions="be brief")
assert resp.status == "completed" and resp.output_text == "hello from ok", resp
assert (resp.usage.input_tokens, resp.usage.output_tokens) == (11, 3), resp.usage
again = client.responses.retrieve(resp.id)
assert again.id == resp.id and again.output_text == "hello from ok", again
follow = client.responses.create(model="qwen", input="and again?", previous_response_id=resp.id)
assert follow.previous_response_id == resp.id and follow.output_text == "hello from ok", follow

events = list(client.responses.create(model="qwen", input="hi", stream=True))
types = [e.type for e in events]
assert types[:2] == ["response.created", "response.in_progress"], types
assert types[-1] == "response.completed", types
assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "hello", types
done = events[-1].response
assert done.output_text == "hello" and done.usage.output_tokens == 2, done
assert [e.sequence_number for e in events] == list(range(len(events))), events
assert client.responses.retrieve(done.id).output_text == "hello"

fn_tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]
r = client.responses.create(model="qwen-tools", input="find", tools=fn_tools)
fc = [o for o in r.output if o.type == "function_call"][0]
assert (fc.name, fc.arguments, fc.call_id) == ("lookup", '{"q":"hub"}', "call_1"), r.output
events = list(client.responses.create(model="qwen-tools", input="find", tools=fn_tools, stream=True))
fc = [o for o in events[-1].response.output if o.type == "function_call"][0]
assert fc.arguments == '{"q":"hub"}', events[-1]
r = client.responses.create(model="small-tools", input="find", tools=fn_tools)
fc = [o for o in r.output if o.type == "function_call"][0]
assert (fc.name, fc.arguments) == ("lookup", '{"q":"hub"}'), r.output
events = list(client.responses.create(model="small-tools", input="find", tools=fn_tools, stream=True))
fc = [o for o in events[-1].response.output if o.type == "function_call"][0]
assert (fc.name, fc.arguments) == ("lookup", '{"q":"hub"}'), events[-1]
assert not [o for o in events[-1].response.output if o.type == "message"], events[-1]

# Embeddings from the embedded model; the SDK asks for base64 and decodes it.
e = client.embeddings.create(model="all-MiniLM-L6-v2", input=["算力网络调度", "compute network scheduling", "a recipe for noodles"])
vecs = [d.embedding for d in e.data]
assert [len(v) for v in vecs] == [384, 384, 384], [len(v) for v in vecs]
norm = sum(x * x for x in vecs[1]) ** 0.5
assert abs(norm - 1) < 1e-4, norm
dot = lambda a, b: sum(x * y for x, y in zip(a, b))
e = client.embeddings.create(model="all-MiniLM-L6-v2", input=["The cat sits on the mat", "A cat is sitting on a mat", "Stock prices fell sharply"], encoding_format="float")
a, b, c = [d.embedding for d in e.data]
assert dot(a, b) > 0.8 > dot(a, c), (dot(a, b), dot(a, c))
assert e.usage.prompt_tokens > 0, e.usage

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

try:
    client.responses.create(model="qwen", input=[{"role": "robot", "content": "x"}])
    raise SystemExit("expected BadRequestError")
except openai.BadRequestError as e:
    assert e.param == "input[0].role", e

try:
    client.responses.retrieve("resp_missing")
    raise SystemExit("expected NotFoundError")
except openai.NotFoundError:
    pass

print("openai-sdk: ok")
