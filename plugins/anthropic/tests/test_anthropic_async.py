"""The native async client: concurrent calls, one client per event loop, closing on its loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from fake_anthropic_api import FakeAnthropicAPI, Reply

from memsift_anthropic import AnthropicLLM

HI = [{"role": "user", "content": "Hi"}]


def test_async_calls_run_concurrently(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    llm = make_llm()

    async def run() -> tuple[list[str], float]:
        await llm.acomplete(HI)  # the client is built and the SDK warm
        fake_api.script(always=Reply(text="ok", delay=0.4))
        start = time.monotonic()
        answers = await asyncio.gather(*(llm.acomplete(HI) for _ in range(6)))
        took = time.monotonic() - start
        await llm.aclose()
        return [a.text for a in answers], took

    texts, took = asyncio.run(run())
    assert texts == ["ok"] * 6
    assert took < 1.5, f"6 calls of 0.4 s took {took:.2f} s: they were not concurrent"
    assert all(r.headers["x-stainless-async"] != "false" for r in fake_api.requests)


def test_one_async_client_per_event_loop(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    llm = make_llm()
    seen: list[object] = []

    async def call() -> str:
        text = (await llm.acomplete(HI)).text
        seen.append(llm._async_client())  # the client of this loop
        seen.append(llm._async_client())
        return text

    assert asyncio.run(call()) == "You said: Hi"
    assert asyncio.run(call()) == "You said: Hi"  # a new loop: a new client, no error
    assert seen[0] is seen[1] and seen[2] is seen[3]
    assert seen[0] is not seen[2]
    llm.close()


def test_close_from_sync_code_closes_the_client_on_its_idle_loop(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    llm = make_llm()
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(llm.acomplete(HI)).text == "You said: Hi"
        client = llm._clients._async
        assert client is not None
        llm.close()
        assert client.client.is_closed()
        llm.close()  # idempotent
    finally:
        loop.close()


def test_close_from_another_thread_while_the_loop_runs(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    llm = make_llm()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        answer = asyncio.run_coroutine_threadsafe(llm.acomplete(HI), loop).result(10)
        assert answer.text == "You said: Hi"
        handle = llm._clients._async
        assert handle is not None
        llm.close()  # submitted to the loop the client belongs to
        deadline = time.monotonic() + 5
        while not handle.client.is_closed() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert handle.client.is_closed()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_aclose_awaits_the_client_of_this_loop_and_calls_work_again(
    make_llm: Callable[..., AnthropicLLM], fake_api: FakeAnthropicAPI
) -> None:
    llm = make_llm()

    async def run() -> None:
        await llm.acomplete(HI)
        handle = llm._clients._async
        assert handle is not None
        await llm.aclose()
        assert handle.client.is_closed()
        await llm.aclose()
        assert (await llm.acomplete(HI)).text == "You said: Hi"  # a new client
        await llm.aclose()

    asyncio.run(run())
    assert llm.complete(HI).text == "You said: Hi"  # and a new sync one after close()
