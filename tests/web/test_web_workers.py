"""The worker pool on its own, with stand-in workers that hang, die or answer at once: a hung
worker is killed and replaced within its time limit, a dead one is replaced, a caller that
goes away leaves the pool intact, and a full pool answers busy instead of waiting forever."""

from __future__ import annotations

import asyncio
import sys
import time

from matdiff.web.schema import Settings
from matdiff.web.workers import Pool

# answers {"echo": expr}; "hang" never answers, "die" exits
STAND_IN = r"""
import json, sys, time
print(json.dumps({"ready": True, "memory": {"rss_mib": 1.0, "interned_nodes": 0}}), flush=True)
for line in sys.stdin:
    expr = json.loads(line)["payload"]["expr"]
    if expr == "hang":
        time.sleep(3600)
    if expr == "die":
        sys.exit(3)
    print(json.dumps({"status": 200, "body": {"echo": expr},
                      "memory": {"rss_mib": 1.0, "interned_nodes": 0}}), flush=True)
"""
PROGRAM = (sys.executable, "-c", STAND_IN)


def run(coroutine):
    return asyncio.run(coroutine)


def pool(size=1, **settings) -> Pool:
    return Pool(size, Settings(**{"seconds": 0.3, "grace": 0.2, **settings}), PROGRAM)


async def settled(p: Pool, size: int) -> None:
    """Wait until the pool is back to ``size`` workers (replacements start in the background)."""
    for _ in range(200):
        if len(p.workers) == size:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the pool has {len(p.workers)} workers, not {size}")


def test_a_hung_worker_is_killed_and_replaced():
    async def scenario():
        p = pool()
        await p.start()
        try:
            started = time.monotonic()
            status, body = await p.run("derive", {"expr": "hang"})
            took = time.monotonic() - started
            assert status == 422 and body["error"]["kind"] == "timeout"
            assert 0.5 <= took < 3.0
            assert await p.run("derive", {"expr": "x"}) == (200, {"echo": "x"})
            await settled(p, 1)
            assert p.counts["killed"] == 1
        finally:
            await p.stop()
    run(scenario())


def test_a_dead_worker_is_replaced():
    async def scenario():
        p = pool()
        await p.start()
        try:
            status, body = await p.run("derive", {"expr": "die"})
            assert status == 500 and "exit status 3" in body["error"]["message"]
            assert await p.run("derive", {"expr": "y"}) == (200, {"echo": "y"})
            assert p.counts["died"] == 1
        finally:
            await p.stop()
    run(scenario())


def test_a_caller_that_goes_away_leaves_the_pool_consistent():
    async def scenario():
        p = pool(seconds=5.0)
        await p.start()
        try:
            gone = asyncio.create_task(p.run("derive", {"expr": "slow-but-fine"}))
            await asyncio.sleep(0)  # it has the worker now
            gone.cancel()
            # the worker's answer to the abandoned request is read, not left for the next one
            assert await p.run("derive", {"expr": "next"}) == (200, {"echo": "next"})
        finally:
            await p.stop()
    run(scenario())


def test_a_full_pool_answers_busy():
    async def scenario():
        p = pool(seconds=2.0, queue_seconds=0.3)
        await p.start()
        try:
            hung = asyncio.create_task(p.run("derive", {"expr": "hang"}))
            await asyncio.sleep(0.05)
            status, body = await p.run("derive", {"expr": "x"})
            assert status == 503 and body["error"]["kind"] == "busy"
            assert (await hung)[0] == 422
        finally:
            await p.stop()
    run(scenario())


def test_workers_are_retired_after_their_tasks():
    async def scenario():
        p = pool(tasks_per_worker=2)
        await p.start()
        try:
            for n in range(5):
                assert await p.run("derive", {"expr": str(n)}) == (200, {"echo": str(n)})
            await settled(p, 1)
            assert p.counts["retired"] == 2
        finally:
            await p.stop()
    run(scenario())


def test_the_budget_is_shared_out_as_requests_queue():
    p = Pool(2, Settings(seconds=4.0, busy_seconds=1.0))
    budgets = []
    for waiting in (0, 2, 6, 100):
        p.waiting = waiting
        budgets.append(p.budget())
    assert budgets == [4.0, 2.0, 1.0, 1.0]
    short = Pool(2, Settings(seconds=0.5, busy_seconds=1.0))
    short.waiting = 10
    assert short.budget() == 0.5  # never above the configured limit
