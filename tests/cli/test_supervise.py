"""The supervisor's process model: forked workers, and what they inherit."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# In a fresh interpreter: register_at_fork hooks and the start method outlive a test.
_SIGTERM_REACHES_A_STARTING_WORKER = textwrap.dedent(
    """
    import multiprocessing, os, signal, sys, time

    from moorage.cli.supervise import fork_workers

    def starting_worker(ready):
        ready.set()
        time.sleep(30)  # still building its application: no handlers of its own yet

    # What granian's supervisor does: a handler that only sets a flag for its main loop.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    fork_workers()
    ready = multiprocessing.Event()
    worker = multiprocessing.Process(target=starting_worker, args=(ready,))
    worker.start()
    ready.wait(10)
    os.kill(worker.pid, signal.SIGTERM)
    worker.join(10)
    alive = worker.is_alive()
    if alive:
        worker.kill()
        worker.join()
    print(alive, worker.exitcode, signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL)
    """
)


def test_sigterm_stops_a_forked_worker_before_it_has_handlers_of_its_own() -> None:
    # A fork inherits the supervisor's handler: without a reset, the worker would swallow the
    # SIGTERM and the supervisor would wait for it forever.
    done = subprocess.run(
        [sys.executable, "-c", _SIGTERM_REACHES_A_STARTING_WORKER],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    alive, exitcode, parent_keeps_its_handler = done.stdout.split()
    assert alive == "False"
    assert int(exitcode) == -15  # killed by SIGTERM
    assert parent_keeps_its_handler == "True"


_PRELOAD_IS_FORK_SAFE = textwrap.dedent(
    """
    import sys, threading

    from moorage.cli.supervise import preload_application

    preload_application()
    assert "moorage.app" in sys.modules, "application modules not preloaded"
    assert threading.active_count() == 1, "a thread would be lost in every forked worker"
    for heavy in ("cryptography", "rich", "yaml"):
        assert heavy not in sys.modules, heavy
    """
)


def test_preloading_for_several_workers_imports_without_starting_anything() -> None:
    """Several workers share the application's modules imported once in the supervisor; that
    must start no thread (a fork keeps only the calling thread) and pull in nothing heavy."""
    done = subprocess.run(
        [sys.executable, "-c", _PRELOAD_IS_FORK_SAFE], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


# A signal delivered at every Python call, so one lands at each point where granian's handler
# or its main loop can be: with a threading.Event (granian's own) the handler soon waits for
# the event's lock that its own thread holds, and the process hangs forever.
_SIGNAL_AT_EVERY_CALL = textwrap.dedent(
    """
    import signal, sys

    from granian._signals import set_main_signals

    from moorage.cli.supervise import build_server

    server = build_server({"host": "127.0.0.1", "port": 1, "workers": 1})
    if sys.argv[1] == "threading":
        import threading

        server.main_loop_interrupt = threading.Event()
    # What granian's startup installs: SIGTERM/SIGINT and SIGHUP set the main loop's event.
    set_main_signals(server.signal_handler_interrupt, server.signal_handler_reload)
    raised = 0

    def signal_at_every_call(frame, event, arg):
        global raised
        if event == "call" and raised < 5000:
            raised += 1
            signal.raise_signal(signal.SIGHUP if raised % 2 else signal.SIGTERM)

    event = server.main_loop_interrupt
    sys.setprofile(signal_at_every_call)
    for _ in range(500):  # granian's main loop: wait, look at the flags, clear
        event.wait()
        event.clear()
    sys.setprofile(None)
    print(raised, server.interrupt_signal)
    """
)


def _run_signal_storm(event_kind: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            [sys.executable, "-c", _SIGNAL_AT_EVERY_CALL, event_kind],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None  # hung


def test_supervisor_signal_handler_never_waits_for_a_lock() -> None:
    done = _run_signal_storm("moorage")
    assert done is not None, "the supervisor's main loop hung under signals"
    assert done.returncode == 0, done.stderr
    raised, interrupted = done.stdout.split()
    assert int(raised) > 500 and interrupted == "True"


def test_signal_storm_hangs_granians_own_event() -> None:
    """The same storm against threading.Event: proof that the test above can fail."""
    assert _run_signal_storm("threading") is None
