"""Worker processes: every request's work runs in one, so no input can hang or exhaust the
server itself.

A worker is ``python -m matdiff.web.workers``, speaking one JSON object per line on its stdin
and stdout (no pickle: nothing the server receives is ever unpickled). It answers under
matdiff's time budget (``Settings.seconds``); one still busy ``Settings.grace`` seconds past it
is killed and replaced, and the request answers 422 "took too long". A worker is also
replaced after ``tasks_per_worker`` requests or when its memory passes ``worker_rss_mib``, so
memory stays bounded however long the server runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .schema import Settings, error

REPLY_BYTES = 64 * 2**20  # the longest reply line read from a worker
START_SECONDS = 60.0      # a worker that is not ready by then is a broken installation
START_ATTEMPTS = 3
WARM_UP = "(2*pi)^(-k/2)*det(S)^(-1/2)*exp(-1/2*(x - m)'*inv(S)*(x - m))"
WARM_UP_DECLARE = "S: symmetric posdef matrix(k,k); x, m: vector(k); k: scalar"


class WorkerDied(Exception):
    pass


@dataclass(eq=False)  # each worker is its own: kept in a set by identity
class Worker:
    process: asyncio.subprocess.Process
    tasks: int = 0
    memory: dict = field(default_factory=dict)

    @classmethod
    async def start(cls, settings: Settings, program: tuple[str, ...] = ()) -> Worker:
        """A started worker, ready for requests; ``program`` replaces the command (tests)."""
        env = dict(os.environ)
        # the worker imports the matdiff this server runs, wherever that is
        here = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
        debug = bool(env.get("MATDIFF_DEBUG"))
        program = program or (sys.executable, "-m", "matdiff.web.workers")
        process = await asyncio.create_subprocess_exec(
            *program, str(settings.seconds),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=None if debug else asyncio.subprocess.DEVNULL, env=env, limit=REPLY_BYTES)
        worker = cls(process)
        try:
            async with asyncio.timeout(START_SECONDS):
                ready = await process.stdout.readline()
        except TimeoutError:
            ready = b""
        if not ready:
            await worker.kill()
            raise WorkerDied("a worker process did not start (run with MATDIFF_DEBUG=1 to see "
                             "its error)")
        worker.memory = json.loads(ready)["memory"]
        return worker

    async def ask(self, task: str, payload: dict, budget: float,
                  seconds: float) -> tuple[int, dict]:
        """The worker's answer under matdiff's time ``budget``; TimeoutError past ``seconds``,
        WorkerDied if it stopped."""
        try:
            self.process.stdin.write(json.dumps({"task": task, "payload": payload,
                                                 "seconds": budget}).encode() + b"\n")
            await self.process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as err:
            raise WorkerDied(f"the worker stopped ({type(err).__name__})") from None
        async with asyncio.timeout(seconds):
            line = await self.process.stdout.readline()
        if not line:
            code = await self.process.wait()
            raise WorkerDied(f"the worker stopped (exit status {code})")
        reply = json.loads(line)
        self.tasks += 1
        self.memory = reply["memory"]
        return reply["status"], reply["body"]

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()
        self.process.stdin.close()  # the last open pipe: the transport can finish

    async def close(self) -> None:
        """Let it finish (end of its input), else kill it."""
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            async with asyncio.timeout(5):
                await self.process.wait()
        except TimeoutError:
            await self.kill()


class Pool:
    """``size`` workers; ``await pool.run(task, payload)`` -> (status, body)."""

    def __init__(self, size: int, settings: Settings, program: tuple[str, ...] = ()):
        self.size, self.settings, self.program = size, settings, program
        self.idle: asyncio.Queue[Worker] | None = None
        self.workers: set[Worker] = set()
        self.counts = {"requests": 0, "killed": 0, "died": 0, "retired": 0, "busy": 0,
                       "lowered": 0}
        self.waiting = 0  # requests waiting for a worker
        self._replacing: set[asyncio.Task] = set()

    async def start(self) -> None:
        self.idle = asyncio.Queue()
        for worker in await asyncio.gather(*(Worker.start(self.settings, self.program)
                                             for _ in range(self.size))):
            self._add(worker)

    async def stop(self) -> None:
        # replacements under way finish first, so that no process outlives the pool
        await asyncio.gather(*self._replacing, return_exceptions=True)
        await asyncio.gather(*(w.close() for w in list(self.workers)), return_exceptions=True)
        self.workers.clear()

    def _add(self, worker: Worker) -> None:
        self.workers.add(worker)
        self.idle.put_nowait(worker)

    async def run(self, task: str, payload: dict) -> tuple[int, dict]:
        self.counts["requests"] += 1
        self.waiting += 1
        try:
            async with asyncio.timeout(self.settings.queue_seconds):
                worker = await self.idle.get()
        except TimeoutError:
            self.counts["busy"] += 1
            return 503, error("busy", f"every worker has been busy for "
                              f"{self.settings.queue_seconds:g} s; try again shortly")
        finally:
            self.waiting -= 1
        # shielded: a client that goes away must not leave a worker half-way through a reply
        return await asyncio.shield(self._on(worker, task, payload, self.budget()))

    def budget(self) -> float:
        """The time one request may take now: the full Settings.seconds while no one waits,
        shared out as the queue grows (so that a few slow inputs cannot hold everyone up),
        never under Settings.busy_seconds."""
        share = self.settings.seconds * self.size / (self.size + self.waiting)
        return max(min(self.settings.seconds, self.settings.busy_seconds), share)

    async def _on(self, worker: Worker, task: str, payload: dict,
                  budget: float) -> tuple[int, dict]:
        if budget < self.settings.seconds:
            self.counts["lowered"] += 1
        seconds = budget + self.settings.grace + (
            self.settings.import_seconds if task == "source" else 0.0)
        try:
            status, body = await worker.ask(task, payload, budget, seconds)
        except TimeoutError:
            self.counts["killed"] += 1
            self._replace(worker, kill=True)
            return 422, error("timeout", f"this took longer than {seconds:g} s, the limit "
                              "here; the work was stopped", hint="simplify the expression or "
                              "lower the order")
        except WorkerDied as err:
            self.counts["died"] += 1
            self._replace(worker, kill=True)
            return 500, error("internal", f"internal error, please report: {err} while "
                              "working on this request; it was replaced")
        memory = worker.memory.get("rss_mib", 0)
        if worker.tasks >= self.settings.tasks_per_worker or \
                memory > self.settings.worker_rss_mib:
            self.counts["retired"] += 1
            self._replace(worker, kill=False)
        else:
            self.idle.put_nowait(worker)
        return status, body

    def _replace(self, worker: Worker, kill: bool) -> None:
        self.workers.discard(worker)

        async def replace() -> None:
            await (worker.kill() if kill else worker.close())
            for attempt in range(START_ATTEMPTS):
                try:
                    self._add(await Worker.start(self.settings, self.program))
                    return
                except WorkerDied:
                    await asyncio.sleep(2 ** attempt)

        task = asyncio.get_running_loop().create_task(replace())
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    def status(self) -> dict:
        return {"workers": [{"tasks": w.tasks, **w.memory} for w in self.workers],
                "idle": self.idle.qsize() if self.idle else 0, **self.counts}


def main(seconds: float) -> None:
    """The worker: read a request line, write its answer line, until stdin ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops us
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything else printed goes to stderr, never into the replies
    sys.stdout = sys.stderr
    import matdiff

    from . import service
    matdiff.limits(seconds=seconds)
    # warm: the page's first request (the Gaussian) is not slower than the next
    service.answer("derive", {"expr": WARM_UP, "wrt": "S", "declare": WARM_UP_DECLARE,
                              "order": 1, "symmetric": "sym", "layout": "shape",
                              "direction": None, "syntax": "auto", "check": True,
                              "steps": False, "entrywise": None})

    def send(message: dict) -> None:
        try:
            line = json.dumps(message, allow_nan=False)
        except ValueError:  # an infinite error or value: JSON has no such number
            line = json.dumps(_finite(message))
        replies.write(line.encode() + b"\n")
        replies.flush()

    send({"ready": True, "memory": service.memory()})
    for line in sys.stdin.buffer:
        request = json.loads(line)
        with matdiff.limits(seconds=request["seconds"]):
            status, body = service.answer(request["task"], request["payload"])
        lowered = request["seconds"] < seconds
        if lowered and body.get("error", {}).get("limit") == "seconds":
            body["error"]["message"] += (f" (the limit was {request['seconds']:.1f} s, lowered "
                                         "while the server is busy: try again later)")
        send({"status": status, "body": body, "memory": service.memory()})


def _finite(value: object) -> object:
    """``value`` with each infinite or NaN float written as its name ("inf", "nan")."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


if __name__ == "__main__":
    main(float(sys.argv[1]))
