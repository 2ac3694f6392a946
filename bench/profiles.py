"""py-spy profiles of a request, for the benchmarks' ``--profile DIR``.

:func:`profiled` samples the gunicorn worker (every thread: the request's and the writers') while
a block runs, into a file of collapsed stacks; :func:`profile_summary` turns that into the two
lists the README quotes: the functions most often on top of a stack (self time), and the
project's own functions by the share of samples they were in. py-spy comes with
``requirements-dev.txt``; it attaches to a process of the same user without root on most
machines (``kernel.yama.ptrace_scope`` 0 or 1 with the bench as the parent).
"""

import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextmanager
def profiled(output: str | None, pid: int):
    """py-spy samples the worker while the block runs (collapsed stacks into ``output``)."""
    if not output:
        yield
        return
    spy = subprocess.Popen(
        [py_spy(), "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
        + ["--nonblocking", "--output", output],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.5)  # let it attach
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


def profile_summary(path: Path, top: int = 12) -> str:
    """What py-spy saw (its raw, collapsed stacks): the functions most often on top of a stack
    (self time), and the project's own functions by the share of samples they were in, leaving
    out the request's chain (middleware, the view: frames in more than 90% of the samples)."""
    own: dict[str, int] = {}
    inside: dict[str, int] = {}
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]
        samples += int(count)
        own[frames[-1]] = own.get(frames[-1], 0) + int(count)
        for frame in set(frames):
            if re.search(r"[(/](ingest|common|users_svc|products_svc|orders_svc)/\w+", frame):
                inside[frame] = inside.get(frame, 0) + int(count)
    inside = {frame: n for frame, n in inside.items() if n <= 0.9 * samples}

    def lines(counts: dict[str, int]) -> str:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
        return "\n".join(f"  {n / max(samples, 1):6.1%}  {frame}" for frame, n in ranked)

    return (
        f"{samples} samples of the busy threads.\nself time:\n{lines(own)}\n"
        f"the project's functions below the request's chain, by samples inside them:\n"
        f"{lines(inside)}"
    )
