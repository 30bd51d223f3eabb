"""The fork server that imports flow files in child processes (see `import_probe`, its client).

Started as `python -c "...serve()"`: it imports what importing a flow file needs once, then,
for each request line on stdin (a batch of files with their bytes), hands the batch to a
child forked ahead of time, relays the child's JSON lines to stdout, and stands in for a
child that died or ran past its deadline: that file's error, and a fresh child for the rest.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys
import time
from pathlib import Path
from typing import Any, Iterator

# The child itself ends a file's import at its deadline (and says on which line it was); one
# stuck where no Python runs is killed this much later (as long again plus this, since a busy
# machine may not have run the child at all for a while).
KILL_GRACE_SECONDS = 2.0


class Lines:
    """JSON lines from a pipe, each within a deadline (a process may hold the pipe open and stay silent)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def next(self, seconds: float) -> dict[str, Any] | None:
        end = time.monotonic() + max(0.0, seconds)
        while b"\n" not in self.buffer:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)



def serve() -> None:
    """The fork server's loop: a request per stdin line, the children's answers on stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _warm_up()
    # What the server holds stays out of the children's collections: a collection touching every
    # object would copy each page the child shares with the server.
    gc.collect()
    gc.freeze()
    spare = _Child()  # forked ahead, while nothing waits: a save's check does not wait for a fork
    out = sys.stdout.buffer
    try:
        for line in sys.stdin.buffer:
            request = json.loads(line)
            folder, timeout = Path(request["folder"]), float(request["timeout"])
            files = [(Path(path), text.encode("latin-1")) for path, text in request["files"]]
            if preload(request.get("preload", ())):
                gc.freeze()
                spare.kill()  # forked without them
                spare = _Child()
            ended: list[_Child] = []
            for answer in _batch(files, folder, timeout, spare, ended, request.get("tables"),
                                 bool(request.get("details"))):
                out.write((json.dumps({**answer, "batch": request["batch"]}) + "\n").encode())
                out.flush()
            out.write((json.dumps({"done": True, "batch": request["batch"]}) + "\n").encode())
            out.flush()
            for child in ended:  # killed already; its exit is waited for once nobody waits on the batch
                child.reap()
            spare = _Child()
    finally:
        spare.kill()


WARM_UP = """
from flows_tui import flow, task

@task(retries=1)
def warm_task(x: int = 1) -> int:
    return x

@flow(name="warm-flow", log_prints=True)
def warm_flow(x: int = 1) -> int:
    return warm_task(x)
"""


def preload(modules: list[str]) -> bool:
    """Import installed modules (never the user's): whether any was new here."""
    import importlib

    new = False
    for name in modules:
        if name not in sys.modules:
            try:
                importlib.import_module(name)
            except BaseException:  # noqa: B036 - the files importing it will say what is wrong
                pass
            new = True
    return new


def _warm_up() -> None:
    """What importing a flow file needs, imported here once, so that every child starts with it."""
    from . import config, flow_files, flow_summaries, plan  # noqa: F401 - plan: the UI's summaries have plans
    from flows_tui import parameters  # noqa: F401
    from flows_tui import tracebacks  # noqa: F401
    from flows_tui.user_code.imports import _after_standard_library

    _after_standard_library()  # where the user's folder goes on sys.path: worked out once, not per child

    exec(compile(WARM_UP, "<warm-up>", "exec"), {"__name__": "flows_tui_warm_up"})


class _Child:
    """A forked child waiting for its files (a process group of its own), and its answers."""

    def __init__(self) -> None:
        request_read, self.request = os.pipe()
        answers, answer_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.request)
            os.close(answers)
            _child(request_read, answer_write)  # never returns
        os.close(request_read)
        os.close(answer_write)
        self.answers = Lines(answers)
        self.status: int | None = None  # its wait status, once it is gone

    def send(self, files: list[tuple[Path, bytes]], folder: Path, timeout: float, tables: str | None,
             details: bool = False) -> None:
        request = {"folder": str(folder), "timeout": timeout, "tables": tables, "details": details,
                   "files": [[str(path), source.decode("latin-1")] for path, source in files]}
        request_pipe, self.request = self.request, -1
        try:
            with os.fdopen(request_pipe, "wb") as pipe:
                pipe.write(json.dumps(request).encode())
        except OSError:
            pass  # it is gone: its end is seen as such

    def gone(self) -> bool:
        if self.status is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = status
        return self.status is not None

    def kill(self, *, wait: bool = True) -> None:
        """The child and whatever the files forked: nothing a file started outlives its check.

        `wait=False`: the signal only; `reap` waits for the exit (a big process takes a few ms to go).
        """
        if self.request != -1:  # never given files: a child still waiting for them reads their end
            os.close(self.request)
            self.request = -1
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            # Not its own process group yet (just forked, the server ending): the child itself.
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if wait:
            self.reap()

    def reap(self) -> None:
        if self.status is None:
            _, self.status = os.waitpid(self.pid, 0)
        if self.answers.fd >= 0:
            os.close(self.answers.fd)
            self.answers.fd = -1


def _batch(files: list[tuple[Path, bytes]], folder: Path, timeout: float, child: _Child, ended: list[_Child],
           tables: str | None = None, details: bool = False) -> Iterator[dict[str, Any]]:
    """Import `files` in children, one child until a file ends it or runs past its deadline.

    The last child is killed but left in `ended` for the caller to reap once the batch's end is sent.
    `tables` (encoded by `flow_summaries.encode_tables`): each answer also carries the summary of
    the file's flows that `list` and `check` read, with flows.toml's parameters checked against them
    (`details`: and each flow's parameter form and plan, for the UI).
    """
    remaining = list(files)
    while remaining:
        child.send(remaining, folder, timeout, tables, details)
        current: Path | None = None
        begun = False
        deadline = float("inf")
        while True:
            message = child.answers.next(min(0.05, max(0.0, deadline - time.monotonic())))
            if message is None:
                if child.gone():
                    message = child.answers.next(0.05)  # the last words it wrote before it went
                    if message is None:
                        break
                elif time.monotonic() >= deadline:
                    break
                else:
                    continue
            if "begin" in message:
                begun = True
                current, deadline = Path(message["begin"]), time.monotonic() + 2 * timeout + KILL_GRACE_SECONDS
            elif "end" in message:
                remaining = []
                break
            elif "restart" in message:
                break
            else:
                current, deadline = None, float("inf")
                remaining = [(path, source) for path, source in remaining if str(path) != message["path"]]
                yield message
        if not remaining:
            child.kill(wait=False)
            ended.append(child)
            return
        child.kill()
        status = child.status
        child = _Child()
        if current is None:
            if begun:
                continue  # gone between two files (a thread a file started, a restart): a fresh child goes on
            current = remaining[0][0]  # gone before its first file: never again with that file
        remaining = [(path, source) for path, source in remaining if path != current]
        yield {"path": str(current), "error": _death(status or 0, timeout)}
    child.kill(wait=False)
    ended.append(child)


def _death(status: int, timeout: float) -> dict[str, Any]:
    if os.WIFEXITED(status):
        return {"reason": f"ImportExited: the process importing the file exited with status {os.WEXITSTATUS(status)}",
                "type": "ImportExited"}
    number = os.WTERMSIG(status)
    if number == signal.SIGKILL:
        return {"reason": f"import did not finish in {timeout:g} s ([project] import_timeout)", "type": "TimeoutError"}
    name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else str(number)
    return {"reason": f"the process importing the file was killed by {name}", "type": "ImportKilled"}


def _child(request: int, write: int) -> None:
    """Wait for a batch of files, then import each, reporting it; a file's prints go nowhere."""
    status = 0
    try:
        os.setpgid(0, 0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        with os.fdopen(request, "rb") as pipe:
            data = pipe.read()
        if not data:  # the server ended before giving it work
            os._exit(0)
        batch = json.loads(data)
        folder, timeout = Path(batch["folder"]), float(batch["timeout"])
        me = os.getpid()
        from . import config

        config._import_timeout = timeout  # the request's, from the parent's flows.toml
        tables = None
        if batch.get("tables") is not None:
            from .flow_summaries import decode_tables

            tables = decode_tables(batch["tables"])
        out = os.fdopen(write, "wb", buffering=0)
        for path, text in batch["files"]:
            out.write((json.dumps({"begin": path}) + "\n").encode())
            answer = _import_one(Path(path), folder, text.encode("latin-1"), tables, bool(batch.get("details")))
            if os.getpid() != me:  # a process the file forked came back here: it is not ours to go on
                os._exit(0)
            out.write((json.dumps(answer) + "\n").encode())
            if (answer.get("error") or {}).get("type") == "TimeoutError":
                out.write(b'{"restart": true}\n')  # its thread may still loop: a fresh child takes the rest
                break
        else:
            out.write(b'{"end": true}\n')
    except BaseException:  # noqa: B036 - nothing of the child may reach the server's loop
        status = 70
    finally:
        os._exit(status)


def _import_one(path: Path, folder: Path, source: bytes, tables: dict | None = None,
                details: bool = False) -> dict[str, Any]:
    from .flow_files import defined_flows, definition_line, load_flow_file
    from flows_tui.tracebacks import format_exception

    forked: list[int] = []
    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    os.fork = fork  # type: ignore[assignment]
    try:
        loaded = load_flow_file(path, root=folder, source=source, for_workers=False)
    finally:
        os.fork = real_fork  # type: ignore[assignment]
    answer: dict[str, Any] = {"path": str(path), "helpers": {name: str(file) for name, file in loaded.helpers.items()}}
    living = [pid for pid in forked if _alive(pid)]
    if loaded.error is not None:
        error = loaded.error
        answer["error"] = {"reason": error.reason, "line": error.line, "traceback": error.traceback,
                           "type": error.error_type}
    elif living:
        answer["error"] = {"reason": f"os.fork() at import left process {living[0]} running; a flow file is "
                                     "imported by list, check and the UI: fork inside a flow or a task",
                           "type": "ImportForked"}
    else:
        answer["flows"] = [{"name": flow.name, "function": flow.fn.__name__, "line": definition_line(flow)}
                           for flow in defined_flows(loaded)]
        if tables is not None:  # for `list` and `check`, which do not import the file themselves
            from .flow_summaries import summarize

            try:
                answer["summary"] = summarize(loaded, tables, details=details)
            except Exception as error:  # noqa: BLE001 - an odd signature or validator is this file's problem
                answer["error"] = {"reason": f"{type(error).__name__}: {error}", "type": type(error).__name__,
                                   "traceback": format_exception(error)}
    return answer


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return not done
