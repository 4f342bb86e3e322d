"""Running the queue (kohya_recipe/train/runqueue.py): outcomes, Ctrl-C, GPU-set locks (locks.py), and continuing
after the runner was killed (liveness.py).

Training is a fake function (tests/_queue_util.py) with the signature and outcomes of
``kohya_recipe.train.run.train_project``; the state folders it leaves follow sd-scripts' names
(``<name>-<epoch:06d>-state/train_state.json``, ``library/train_util.py`` ``EPOCH_STATE_NAME``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from kohya_recipe.errors import ExitCode, TrainingInterrupted
from kohya_recipe.train.liveness import entry_state, trainer_processes
from kohya_recipe.train.locks import GpuLock
from kohya_recipe.train.queue_edit import add_to_queue, list_queue
from kohya_recipe.train.queuefile import (
    DONE,
    FAILED,
    INTERRUPTED,
    PENDING,
    RUNNING,
    Queue,
    QueueError,
)
from kohya_recipe.train.runqueue import format_run_summary, run_queue
from tests._queue_util import PYTHON, FakeTrain, make_project, subprocess_env, wait_for, write_recipe, write_state


def _dead_pid() -> int:
    proc = subprocess.Popen([PYTHON, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------------------------------------------
# run


def test_run_trains_in_order_records_outcomes_and_goes_on_after_failures(projects: list[Path], qfile: Path) -> None:
    add_to_queue(projects, qfile)
    train = FakeTrain({"CharacterAI-1-A": "raise", "CharacterAI-1-B": "failed"})
    logs: list[str] = []
    result = run_queue(qfile, train=train, quiet=True, sd_scripts="/opt/sd-scripts", log=logs.append)
    assert train.calls == [("CharacterAI-1-A", False), ("CharacterAI-1-B", False), ("CharacterAI-1-C", False)]
    assert train.kwargs[0] == {"quiet": True, "sd_scripts": "/opt/sd-scripts"}
    assert [e.status for e in result.ran] == [FAILED, FAILED, DONE]
    assert result.failed == [1, 2]
    a, b, c = list_queue(qfile)
    assert a.last_error == f"{projects[0]}: the trainer exited 0 without writing the final checkpoint"
    assert (b.last_outcome, b.last_exit_code, b.last_run) == ("failed", 4, str(projects[1] / "runs" / "run-2.json"))
    assert (c.status, c.last_outcome, c.last_exit_code, c.attempts) == (DONE, "success", 0, 1)
    assert c.started is not None and c.finished is not None and c.finished >= c.started
    assert c.pid is None and c.host is None  # only a running entry names its runner
    assert logs[0] == "queue: #1 CharacterAI-1-A: starting on all GPUs (attempt 1)"
    assert logs[-1] == f"queue: #3 CharacterAI-1-C: done ({projects[2] / 'runs' / 'run-3.json'})"
    # Nothing is left to run: a second call does nothing.
    assert run_queue(qfile, train=train).ran == []


def test_entries_added_while_the_queue_runs_are_picked_up(projects: list[Path], qfile: Path) -> None:
    add_to_queue(projects[:1], qfile)

    def add_more(_project: Path) -> str:
        add_to_queue([projects[1]], qfile)  # another shell adds a run while the first one trains
        return "success"

    train = FakeTrain({"CharacterAI-1-A": add_more})
    run_queue(qfile, train=train)
    assert [name for name, _ in train.calls] == ["CharacterAI-1-A", "CharacterAI-1-B"]


def test_ctrl_c_stops_the_queue_and_the_entry_resumes_next_time(projects: list[Path], qfile: Path) -> None:
    add_to_queue(projects[:2], qfile)

    def interrupted_after_a_save(project: Path) -> str:
        write_state(project, 2)  # sd-scripts had saved epoch 2's state before Ctrl-C
        return "interrupt"

    train = FakeTrain({"CharacterAI-1-A": interrupted_after_a_save})
    with pytest.raises(TrainingInterrupted) as exc:
        run_queue(qfile, train=train)
    assert exc.value.exit_code == ExitCode.INTERRUPTED == 130
    assert str(exc.value) == (
        "queue stopped; entry #1 CharacterAI-1-A is interrupted and continues on the next `kohya-recipe queue run`"
    )
    assert train.calls == [("CharacterAI-1-A", False)]  # B did not start
    assert [e.status for e in list_queue(qfile)] == [INTERRUPTED, PENDING]

    train2 = FakeTrain()
    run_queue(qfile, train=train2)
    assert train2.calls == [("CharacterAI-1-A", True), ("CharacterAI-1-B", False)]
    a = list_queue(qfile)[0]
    assert (a.status, a.attempts, a.resumed) == (DONE, 2, True)


def test_an_interrupted_entry_without_a_state_folder_restarts(projects: list[Path], qfile: Path) -> None:
    add_to_queue(projects[:1], qfile)
    with pytest.raises(TrainingInterrupted):
        run_queue(qfile, train=FakeTrain({"CharacterAI-1-A": "interrupt"}))
    train = FakeTrain()
    run_queue(qfile, train=train)
    assert train.calls == [("CharacterAI-1-A", False)]


def test_keyboard_interrupt_outside_the_trainer_is_handled_the_same(projects: list[Path], qfile: Path) -> None:
    add_to_queue(projects[:1], qfile)

    def ctrl_c(_project: Path) -> str:
        raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        run_queue(qfile, train=FakeTrain({"CharacterAI-1-A": ctrl_c}))
    assert list_queue(qfile)[0].status == INTERRUPTED


def test_a_missing_trainer_stops_the_queue_without_using_up_entries(projects: list[Path], qfile: Path) -> None:
    from kohya_recipe.train.launch import TrainerNotFound

    add_to_queue(projects[:2], qfile)

    def no_sd_scripts(_project: Path) -> str:
        raise TrainerNotFound("sd-scripts not found; looked at $KOHYA_RECIPE_SD_SCRIPTS (unset)")

    train = FakeTrain({"CharacterAI-1-A": no_sd_scripts})
    with pytest.raises(QueueError) as exc:
        run_queue(qfile, train=train)
    assert str(exc.value) == (
        "sd-scripts not found; looked at $KOHYA_RECIPE_SD_SCRIPTS (unset) (nothing was launched; the queue "
        "stopped and #1 CharacterAI-1-A is still pending)"
    )
    assert train.calls == [("CharacterAI-1-A", False)]
    a, b = list_queue(qfile)
    assert (a.status, a.attempts, a.started, a.finished, a.pid) == (PENDING, 0, None, None, None)
    assert b.status == PENDING
    # Once the trainer is found, the queue runs as if nothing happened.
    run_queue(qfile, train=FakeTrain())
    assert [(e.status, e.attempts) for e in list_queue(qfile)] == [(DONE, 1), (DONE, 1)]


def test_a_bug_in_training_is_recorded_and_propagates(projects: list[Path], qfile: Path) -> None:
    add_to_queue(projects[:1], qfile)

    def bug(_project: Path) -> str:
        raise ZeroDivisionError("division by zero")

    with pytest.raises(ZeroDivisionError):
        run_queue(qfile, train=FakeTrain({"CharacterAI-1-A": bug}))
    entry = list_queue(qfile)[0]
    assert (entry.status, entry.last_error) == (FAILED, "ZeroDivisionError: division by zero")


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda p: shutil.rmtree(p), "project folder not found"),
        (lambda p: (p / "resolved-recipe.toml").unlink(), "not a kohya-recipe project"),
        (lambda p: (p / "resolved-recipe.toml").write_text("[training\n"), "resolved-recipe.toml"),
    ],
    ids=["folder-gone", "not-a-project", "recipe-broken"],
)
def test_a_project_that_cannot_be_loaded_fails_counts_and_the_queue_goes_on(
    projects: list[Path], qfile: Path, break_it: Any, message: str
) -> None:
    add_to_queue(projects, qfile)
    break_it(projects[1])
    train = FakeTrain()
    logs: list[str] = []
    result = run_queue(qfile, train=train, log=logs.append)
    assert train.calls == [("CharacterAI-1-A", False), ("CharacterAI-1-C", False)]
    b = list_queue(qfile)[1]
    assert b.status == FAILED and message in (b.last_error or "")
    # the failed entry is part of what this run did: `queue run` says "2 done, 1 failed" and exits 4
    assert [(e.id, e.status) for e in result.ran] == [(1, DONE), (2, FAILED), (3, DONE)]
    assert result.failed == [2]
    assert format_run_summary(result) == "Queue finished: 2 done, 1 failed."
    assert f"queue: #2 CharacterAI-1-B: failed: {projects[1]}" in "\n".join(logs)


def test_a_setup_error_of_one_project_fails_that_entry_only(projects: list[Path], qfile: Path) -> None:
    """Nothing was launched for this project (another `train` holds it, nothing to resume, an unwritable log
    folder): the entry fails like a crashed run, and the other projects still train."""
    from kohya_recipe.train.launch import TrainerSetupError

    add_to_queue(projects[:2], qfile)

    def locked(project: Path) -> str:
        raise TrainerSetupError("another `kohya-recipe train` is training this project (pid 1)", source=str(project))

    train = FakeTrain({"CharacterAI-1-A": locked})
    result = run_queue(qfile, train=train)
    assert train.calls == [("CharacterAI-1-A", False), ("CharacterAI-1-B", False)]
    assert result.failed == [1] and result.succeeded == [2]
    a = list_queue(qfile)[0]
    assert (a.status, a.last_error) == (
        FAILED,
        f"{projects[0]}: another `kohya-recipe train` is training this project (pid 1)",
    )


def _mark_running(qfile: Path, entry_id: int, pid: int, gpus: list[str] | None = None) -> None:
    with Queue(qfile).edit() as state:
        entry = state.get(entry_id)
        assert entry is not None
        entry.status = RUNNING
        entry.attempts = 1
        entry.pid = pid
        entry.host = socket.gethostname()
        entry.gpus = gpus or []


def test_an_entry_left_running_by_a_dead_runner_is_resumed_first(projects: list[Path], qfile: Path) -> None:
    add_to_queue(projects[:2], qfile)
    _mark_running(qfile, 1, _dead_pid())
    write_state(projects[0], 3)
    assert entry_state(list_queue(qfile)[0]) == "running (stale)"
    logs: list[str] = []
    train = FakeTrain()
    run_queue(qfile, train=train, log=logs.append)
    assert train.calls == [("CharacterAI-1-A", True), ("CharacterAI-1-B", False)]
    assert "left running by a runner that is gone" in logs[0] and logs[0].endswith(
        "resuming from its newest state folder"
    )
    assert list_queue(qfile)[0].attempts == 2


def test_an_entry_left_running_without_state_restarts(projects: list[Path], qfile: Path) -> None:
    add_to_queue(projects[:1], qfile)
    _mark_running(qfile, 1, _dead_pid())
    logs: list[str] = []
    train = FakeTrain()
    run_queue(qfile, train=train, log=logs.append)
    assert train.calls == [("CharacterAI-1-A", False)]
    assert logs[0].endswith("restarting (no state folder)")


def test_an_entry_a_live_runner_trains_is_left_alone(projects: list[Path], qfile: Path) -> None:
    add_to_queue(projects[:2], qfile)
    _mark_running(qfile, 1, os.getpid())
    held = GpuLock(qfile.absolute(), [])
    assert held.try_acquire()
    try:
        result = run_queue(qfile, train=FakeTrain())
    finally:
        held.release()
    # Both entries need all GPUs, which the live runner holds: nothing runs here, #2 waits for that runner.
    assert result.ran == []
    assert result.waiting_for_gpus == [2]
    assert [e.status for e in list_queue(qfile)] == [RUNNING, PENDING]


def test_runners_on_different_gpus_do_not_block_each_other(tmp_path: Path, qfile: Path) -> None:
    write_recipe(tmp_path)
    on0 = make_project(tmp_path, "A", 'accelerate.gpu_ids=["0"]')
    on1 = make_project(tmp_path, "B", 'accelerate.gpu_ids=["1"]')
    on_all = make_project(tmp_path, "C")
    add_to_queue([on0, on1, on_all], qfile)
    other_runner = GpuLock(qfile.absolute(), ["0"])  # another `queue run` trains on GPU 0
    assert other_runner.try_acquire()
    try:
        train = FakeTrain()
        logs: list[str] = []
        result = run_queue(qfile, train=train, log=logs.append)
    finally:
        other_runner.release()
    assert train.calls == [("CharacterAI-1-B", False)]
    assert "starting on GPU 1" in logs[0]
    assert result.waiting_for_gpus == [1, 3]  # GPU 0, and "all GPUs" which includes 0
    assert list_queue(qfile)[1].gpus == ["1"]


def test_gpu_locks_overlap_as_sets() -> None:
    # One GPU set at a time: overlapping sets exclude each other, disjoint ones do not, [] means every GPU.
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        q = Path(d) / "queue.toml"
        a, b, both, every = GpuLock(q, ["0"]), GpuLock(q, ["1"]), GpuLock(q, ["0", "1"]), GpuLock(q, [])
        assert a.try_acquire() and b.try_acquire()
        assert not both.try_acquire() and not every.try_acquire()
        a.release()
        b.release()
        assert every.try_acquire()
        assert not a.try_acquire()
        every.release()
        assert both.try_acquire()
        assert not b.try_acquire()
        both.release()


# ----------------------------------------------------------------------------------------------------------------
# Killed mid-run and started again


RUNNER = (
    "import sys\n"
    "from tests._queue_util import slow_train\n"
    "from kohya_recipe.train.runqueue import format_run_summary, run_queue\n"
    "run_queue(sys.argv[1], train=slow_train)\n"
)


def test_a_killed_runner_is_continued_by_the_next_one(projects: list[Path], qfile: Path) -> None:
    add_to_queue(projects[:2], qfile)
    proc = subprocess.Popen([PYTHON, "-c", RUNNER, str(qfile)], env=subprocess_env())
    try:
        assert wait_for(lambda: (projects[0] / f"started-{proc.pid}").exists(), proc=proc), "the runner never started"
        entry = list_queue(qfile)[0]
        assert (entry.status, entry.pid, entry.attempts) == (RUNNING, proc.pid, 1)
        # While it lives, the entry is its own: another runner leaves it alone.
        assert run_queue(qfile, train=FakeTrain()).ran == []
        proc.send_signal(signal.SIGKILL)  # no chance to clean up: like a power cut
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list_queue(qfile)[0].status == RUNNING  # the file still says so; the lock says otherwise
    train = FakeTrain()
    run_queue(qfile, train=train)
    # slow_train wrote an epoch state folder before it was killed, so the entry resumes from it.
    assert train.calls == [("CharacterAI-1-A", True), ("CharacterAI-1-B", False)]
    entries = list_queue(qfile)
    assert [(e.status, e.attempts) for e in entries] == [(DONE, 2), (DONE, 1)]
    assert entries[0].resumed is True


def test_trainer_processes_finds_a_trainer_by_cwd_and_script(tmp_path: Path) -> None:
    if not Path("/proc/self/cwd").exists():
        pytest.skip("needs Linux /proc")
    project = tmp_path / "proj"
    project.mkdir()
    script = tmp_path / "train_network.py"
    script.write_text("import time\ntime.sleep(60)\n")
    other = tmp_path / "other.py"
    other.write_text("import time\ntime.sleep(60)\n")
    trainer = subprocess.Popen([PYTHON, str(script)], cwd=project)
    shell = subprocess.Popen([PYTHON, str(other)], cwd=project)  # e.g. a shell sitting in the project folder
    try:
        assert wait_for(lambda: trainer_processes(project) == [trainer.pid])
    finally:
        trainer.kill()
        shell.kill()
        trainer.wait()
        shell.wait()
    assert trainer_processes(project) == []


def test_a_trainer_left_by_a_killed_runner_is_waited_for(projects: list[Path], qfile: Path, tmp_path: Path) -> None:
    # SIGKILL on `queue run` does not kill the `accelerate launch` child it started; starting a second trainer
    # on the same project and GPU would corrupt both runs, so the new runner waits for the orphan to exit.
    if not Path("/proc/self/cwd").exists():
        pytest.skip("needs Linux /proc")
    add_to_queue(projects[:1], qfile)
    _mark_running(qfile, 1, _dead_pid())
    script = tmp_path / "train_network.py"
    script.write_text("import time\ntime.sleep(300)\n")
    orphan = subprocess.Popen([PYTHON, str(script)], cwd=projects[0])
    logs: list[str] = []

    def end_the_orphan_once_waited_for() -> None:
        # not a timed sleep in the orphan: on a busy machine it could end before the runner looks for it
        wait_for(lambda: any("waiting for it to exit" in line for line in logs))
        orphan.kill()
        orphan.wait()

    try:
        assert wait_for(lambda: trainer_processes(projects[0]) == [orphan.pid])
        seen_at_start: list[list[int]] = []

        def check(project: Path) -> str:
            seen_at_start.append(trainer_processes(project))
            return "success"

        killer = threading.Thread(target=end_the_orphan_once_waited_for, daemon=True)
        killer.start()
        run_queue(qfile, train=FakeTrain({"CharacterAI-1-A": check}), log=logs.append, orphan_poll=0.05)
        killer.join(timeout=120)
    finally:
        if orphan.poll() is None:
            orphan.kill()
        orphan.wait()
    assert seen_at_start == [[]]
    assert f"still works in {projects[0]} (pid {orphan.pid}); waiting for it to exit" in logs[1]
