"""The project lock is held by the operating system while a project is open: a held lock is respected
whatever its file says, and a stale lock is taken over by one process only."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from efficientsam_studio.annotations import storage
from efficientsam_studio.annotations.errors import ProjectLockedError
from efficientsam_studio.annotations.project import Project

from .test_store_fixes_recovery import closed, write_lock  # noqa: F401 (fixture)

HOLD = textwrap.dedent("""
    import sys, time
    from efficientsam_studio.annotations.errors import ProjectLockedError
    from efficientsam_studio.annotations.project import Project
    start = float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    try:
        project = Project.open(sys.argv[1])
    except ProjectLockedError:
        print("LOCKED", flush=True)
        sys.exit(0)
    print("OPENED", flush=True)
    sys.stdin.readline()
    project.close()
""")


def holder(path, start: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(start)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_held_lock_is_respected_whatever_its_file_says(closed):  # noqa: F811 (fixture)
    process = holder(closed)
    try:
        assert process.stdout.readline().strip() == "OPENED"
        write_lock(closed, "not a lock", age=3600)  # as if a crashed writer had left it long ago
        with pytest.raises(ProjectLockedError, match="another process"):
            Project.open(closed)
    finally:
        process.communicate("\n", timeout=60)
    with Project.open(closed):  # released with the holder
        pass
    assert not storage.lock_path(closed).exists()


def test_a_stale_lock_is_taken_over_by_one_process_only(closed):  # noqa: F811 (fixture)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_lock(closed, {"pid": dead.pid, "hostname": __import__("socket").gethostname()}, age=3600)
    start = time.time() + 2.0  # every process tries at the same moment
    processes = [holder(closed, start) for _ in range(4)]
    try:
        answers = sorted(process.stdout.readline().strip() for process in processes)
    finally:
        for process in processes:
            process.communicate("\n", timeout=60)
    assert answers == ["LOCKED", "LOCKED", "LOCKED", "OPENED"]
