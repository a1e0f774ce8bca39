"""The official `openai` SDK as a client of aiplus's agents (PyPI `openai`).

    python3 openai_client.py mcp URL KEY     # agent:helper, server-side MCP calls, whole and streamed
    python3 openai_client.py gated URL KEY   # agent:gated, a function tool round trip and approvals
    python3 openai_client.py conversations URL KEY   # a conversation carried by agent:helper and a model

Prints one JSON line the Rust test checks.
"""
import json
import sys

from openai import OpenAI

mode, url, key = sys.argv[1], sys.argv[2], sys.argv[3]
client = OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


def dump(r):
    d = r.model_dump()
    d["output_text"] = r.output_text
    return d


def mcp():
    script = 'call calc__add {"a": 2, "b": 3}\nstep2 calc26__echo {"text": "hi"}'
    whole = client.responses.create(model="agent:helper", input=script)
    events = []
    with client.responses.create(model="agent:helper", input=script, stream=True) as stream:
        for ev in stream:
            events.append(ev.model_dump())
    return {"whole": dump(whole), "stream": {"events": events}}


def gated():
    first = client.responses.create(model="agent:gated", input='call lookup {"q": "weather"}')
    call = next(i for i in first.output if i.type == "function_call")
    done = client.responses.create(
        model="agent:gated",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "42 degrees"}],
    )
    function = {"first": [i.type for i in first.output], "final_text": done.output_text}

    asked = client.responses.create(model="agent:gated", input='call ops__count {"label": "no"}')
    request = next(i for i in asked.output if i.type == "mcp_approval_request")
    denied = client.responses.create(
        model="agent:gated",
        previous_response_id=asked.id,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": False}],
    )
    asked2 = client.responses.create(model="agent:gated", input='call ops__count {"label": "yes"}')
    request2 = next(i for i in asked2.output if i.type == "mcp_approval_request")
    approved = client.responses.create(
        model="agent:gated",
        previous_response_id=asked2.id,
        input=[{"type": "mcp_approval_response", "approval_request_id": request2.id, "approve": True}],
    )
    # Answering the same request again runs nothing more.
    again = client.responses.create(
        model="agent:gated",
        previous_response_id=approved.id,
        input=[{"type": "mcp_approval_response", "approval_request_id": request2.id, "approve": True}],
    )
    approval = {
        "asked": request.name,
        "denied_text": denied.output_text,
        "approved_text": approved.output_text,
        "again_calls": [i.type for i in again.output if i.type == "mcp_call"],
    }
    return {"function": function, "approval": approval}


def conversations():
    conv = client.conversations.create(items=[{"type": "message", "role": "user", "content": "我们来算数"}], metadata={"topic": "算术"})
    first = client.responses.create(model="agent:helper", input='call calc__add {"a": 2, "b": 3}', conversation=conv.id)
    second = client.responses.create(model="script", input="谢谢", conversation=conv.id)
    items = client.conversations.items.list(conv.id, order="asc", limit=100)
    kinds = [i.type for i in items.data]
    page = client.conversations.items.list(conv.id, limit=2)
    older = client.conversations.items.list(conv.id, limit=100, after=page.data[-1].id)
    added = client.conversations.items.create(conv.id, items=[{"type": "message", "role": "user", "content": "再见"}])
    one = client.conversations.items.retrieve(added.data[0].id, conversation_id=conv.id)
    client.conversations.items.delete(added.data[0].id, conversation_id=conv.id)
    updated = client.conversations.update(conv.id, metadata={"topic": "数学"})
    deleted = client.conversations.delete(conv.id)
    return {
        "id": conv.id,
        "first_text": first.output_text,
        "first_conversation": first.conversation.id if first.conversation else None,
        "second_text": second.output_text,
        "kinds": kinds,
        "page": [len(page.data), page.has_more],
        "older": len(older.data),
        "one": one.content[0].text,
        "metadata": updated.metadata,
        "deleted": deleted.deleted,
    }


print(json.dumps({"mcp": mcp, "gated": gated, "conversations": conversations}[mode]()))
