"""The OpenAI Agents SDK (PyPI `openai-agents`) driving an aiplus agent: the model is
`agent:helper` behind OpenAIResponsesModel with aiplus's base URL; the SDK adds a function tool
of its own, which it runs itself, while the agent's MCP tool runs server-side.

    python3 agents_sdk.py URL KEY
"""
import asyncio
import json
import sys

from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

url, key = sys.argv[1], sys.argv[2]
set_tracing_disabled(True)
local_calls = []


@function_tool
def weather(city: str) -> str:
    """The weather in a city."""
    local_calls.append(city)
    return f"sunny in {city}"


async def main():
    client = AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    agent = Agent(
        name="helper",
        instructions="Answer with the tools.",
        model=OpenAIResponsesModel(model="agent:helper", openai_client=client),
        tools=[weather],
    )
    result = await Runner.run(agent, 'call calc__add {"a": 2, "b": 3}\nstep2 weather {"city": "Guiyang"}')
    print(json.dumps({"final_output": result.final_output, "local_calls": local_calls}))


asyncio.run(main())
