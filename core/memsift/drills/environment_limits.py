"""The hostile-environment cases of :mod:`memsift.drills.environment`: a read-only store
folder, read-only store files, and a full disk.

- **Read-only**: as root, ``chmod`` does not stop writes, so the folder (or the database and
  history files, or the database alone) is made read-only by a read-only bind mount; without
  the right to mount, by ``chmod``. The documented behaviour: a read-only folder is a
  ``StoreError`` at open (SQLite must create its ``-wal`` and ``-shm`` files beside the
  database); read-only files in a writable folder open, reads work, and every write raises
  ``StoreError`` and changes nothing.
- **Full disk**: the store is copied onto a small tmpfs and the rest of it filled, then
  single adds, batched adds, updates, deletes (with compactions: the drill lowers the
  compaction threshold) run until several fail. Without the right to mount, a child process
  runs the same case under ``RLIMIT_FSIZE`` (writes past it fail with ``EFBIG``). Every
  failing call must be a ``StoreError`` that changes nothing; a close must not raise; every
  acknowledged write survives a reopen; and once space is freed the store works.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from memsift.drills.environment_store import (
    USERS,
    Expected,
    Layout,
    check_cli,
    cli_failed,
    cli_run,
    drive,
    missing_from,
    snapshot,
    warnings_logged,
)
from memsift.drills.report import DrillReport
from memsift.drills.writer import word
from memsift.errors import StoreError
from memsift.memory import Memory

#: Free bytes left on the full-disk tmpfs after the store and the filler.
ROOM = 1024 * 1024
#: How many failed writes the full-disk case waits for before it frees space.
FAILURES = 8


def _mount(*args: str) -> bool:
    try:
        done = subprocess.run(["mount", *args], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _umount(path: Path) -> None:
    """Unmount ``path``; lazily when something still holds a file open there."""
    done = subprocess.run(["umount", str(path)], capture_output=True, timeout=30, check=False)
    if done.returncode:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


def can_mount() -> bool:
    """Whether this process may mount (root with the capability): tried on a scratch dir."""
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        if not _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", tmp):
            return False
        _umount(Path(tmp))
    return True


@contextmanager
def read_only(paths: list[Path], mounting: bool) -> Iterator[None]:
    """Make ``paths`` read-only (a read-only bind mount each, else chmod), undone after."""
    done: list[Path] = []
    modes = {p: p.stat().st_mode for p in paths}
    try:
        for p in paths:
            if mounting:
                if not _mount("--bind", str(p), str(p)):
                    raise OSError(f"cannot bind-mount {p}")
                done.append(p)
                if not _mount("-o", "remount,ro,bind", str(p)):
                    raise OSError(f"cannot remount {p} read-only")
            else:
                p.chmod(modes[p] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        yield
    finally:
        for p in reversed(done):
            _umount(p)
        if not mounting:
            for p, mode in modes.items():
                p.chmod(mode)


def _write_ops(m: Memory, model: Expected, rng: random.Random) -> list[Callable[[], None]]:
    """Single adds, batched adds, an update and deletes of ``user``'s memories on ``m``; each
    updates ``model`` when it returns."""
    user = rng.choice(USERS)
    mine = [i for i, (_, u) in model.records.items() if u == user]

    def single() -> None:
        text = f"added {word(rng.randrange(1 << 30))} alone of {user}"
        (r,) = m.add(text, user_id=user, infer=False)["results"]
        model.records[r["id"]] = (text, user)
        model.history[r["id"]] = [("ADD", text)]

    def batch() -> None:
        n = rng.randrange(1 << 30)
        texts = [f"added {word(n)} {word(i + 50)} batch of {user}" for i in range(6)]
        for r in m.add(texts, user_id=user, infer=False)["results"]:
            model.records[r["id"]] = (r["memory"], user)
            model.history[r["id"]] = [("ADD", r["memory"])]

    def update() -> None:
        if not mine:
            return
        target, text = mine[0], f"changed {word(rng.randrange(1 << 30))} of {user}"
        m.update(target, text)
        model.records[target] = (text, user)
        model.history[target].append(("UPDATE", text))

    def delete() -> None:
        for target in mine[1:3]:
            m.delete(target)
            del model.records[target], model.history[target]

    return [single, batch, update, delete, single, batch]


def _check_writes(
    m: Memory, model: Expected, label: str, report: DrillReport, *, want_failures: int
) -> int:
    """Write through ``m`` until ``want_failures`` calls failed (or 400 calls); returns the
    failures. Each failure must be a StoreError that leaves the store as the model says."""
    rng = random.Random(len(model.records))
    failures = calls = 0
    while failures < want_failures and calls < 400:
        for op in _write_ops(m, model, rng):
            calls += 1
            epoch = m.vector_store.stats()["epoch"]  # type: ignore[attr-defined]
            try:
                op()
                report.note(f"{label}: acknowledged writes")
                if m.vector_store.stats()["epoch"] != epoch:  # type: ignore[attr-defined]
                    report.note(f"{label}: compactions")
            except StoreError as exc:
                failures += 1
                report.note(f"{label}: StoreError on {op.__name__}")
                if snapshot(m) != model:
                    report.fail(f"{label}: a failed {op.__name__} changed the store", "made worse")
                if not str(exc):
                    report.fail(f"{label}: an empty StoreError", "unclear")
            except Exception as exc:
                failures += 1
                report.fail(
                    f"{label}: {op.__name__} raised {type(exc).__name__}: {exc}", "raw error"
                )
    return failures


def _after_undo(layout: Layout, model: Expected, label: str, report: DrillReport) -> None:
    """Once the constraint is lifted: the store opens, holds everything, and works."""
    try:
        with Memory.from_config(layout.config) as m:
            lost = missing_from(m, model)
            if lost:
                report.lost += len(lost)
                report.fail(f"{label}: after the undo, missing {lost[:3]}", "lost")
                return
            after = drive(m, model, USERS[1])
        with Memory.from_config(layout.config) as m:
            lost = missing_from(m, after, search=False)
            if lost:
                report.fail(f"{label}: after the undo, writes did not last: {lost[:3]}", "lost")
    except Exception as exc:
        report.fail(f"{label}: after the undo: {type(exc).__name__}: {exc}", "made worse")


def _constrained(layout: Layout, model: Expected, label: str, report: DrillReport) -> None:
    """Open under a constraint: a StoreError naming a file, or a store that reads all and
    whose writes fail cleanly; the CLI ends cleanly either way."""
    check_cli(layout, model, label, report)
    before = layout.truth()
    try:
        m = Memory.from_config(layout.config)
    except StoreError as exc:
        if not any(str(p) in str(exc) for p in (layout.db, layout.history, layout.root)):
            report.fail(f"{label}: the error names no file: {exc}", "unclear")
        report.note(f"{label}: StoreError at open")
        if layout.truth() != before:
            report.fail(f"{label}: the failed open changed the files", "made worse")
        return
    except Exception as exc:
        report.fail(f"{label}: raw {type(exc).__name__} at open: {exc}", "raw error")
        return
    try:
        lost = missing_from(m, model)
        if lost:
            report.lost += len(lost)
            report.fail(f"{label}: opened without {lost[:3]}", "silent loss")
        report.note(f"{label}: opened")
        if not _check_writes(m, model, label, report, want_failures=4):
            report.fail(f"{label}: writes succeeded on read-only files", "unnoticed")
    finally:
        try:
            m.close()
        except Exception as exc:
            report.fail(f"{label}: close raised {type(exc).__name__}: {exc}", "raw error")


def leave_pending(layout: Layout) -> None:
    """Mark the last history event of each memory pending, as a process killed after its
    store write and before the settle leaves it (the next open settles it: a write)."""
    conn = sqlite3.connect(layout.history, isolation_level=None)
    try:
        conn.execute(
            "UPDATE history SET pending = ? WHERE seq IN "
            "(SELECT MAX(seq) FROM history GROUP BY memory_id)",
            (time.time() - 10,),
        )
    finally:
        conn.close()


def read_only_cases(pristine: Layout, expected: Expected, report: DrillReport) -> None:
    """The read-only folder and read-only files cases, each on a copy of ``pristine``."""
    mounting = can_mount()
    report.note("read-only by bind mount" if mounting else "read-only by chmod")
    if os.geteuid() == 0 and not mounting:
        report.fail("read-only: root without the right to mount cannot be refused writes", "setup")
        return
    for label in ("read-only folder", "read-only files", "read-only database"):
        with tempfile.TemporaryDirectory(prefix="memsift-env-") as tmp:
            layout = Layout(Path(tmp) / "s")
            shutil.copytree(pristine.root, layout.root)
            model = _copy_model(expected)
            paths = {
                "read-only folder": [layout.root, layout.db.parent],
                "read-only files": [layout.db, layout.history],
            }.get(label, [layout.db])
            report.attempts += 1
            leave_pending(layout)
            try:
                with read_only(paths, mounting):
                    _constrained(layout, model, label, report)
            except OSError as exc:
                report.fail(f"{label}: cannot make the files read-only: {exc}", "setup")
                continue
            _after_undo(layout, model, label, report)


# --------------------------------------------------------------------------- the full disk


def _fill(root: Path, room: int) -> Path:
    """A filler file that leaves about ``room`` bytes free on ``root``'s file system."""
    filler = root / "filler"
    free = shutil.disk_usage(root).free
    with filler.open("wb") as handle:
        left = max(free - room, 0)
        while left > 0:
            chunk = min(left, 1 << 20)
            handle.write(b"\0" * chunk)
            left -= chunk
    return filler


def _full_disk(
    layout: Layout, model: Expected, free: Callable[[], None], report: DrillReport
) -> None:
    from memsift.builtin.faiss import index as faiss_index

    label = "full disk"
    report.attempts += 1
    saved = faiss_index.COMPACT_MIN
    faiss_index.COMPACT_MIN = 4  # compactions inside the deletes, on the full disk
    try:
        with warnings_logged() as logged:
            try:
                m = Memory.from_config(layout.config)
            except Exception as exc:
                report.fail(
                    f"{label}: no open with room left: {type(exc).__name__}: {exc}", "setup"
                )
                return
            try:
                failures = _fill_up(layout, m, model, label, report)
            finally:
                try:
                    m.close()  # saving the index fails: logged, never raised
                except Exception as exc:
                    report.fail(f"{label}: close raised {type(exc).__name__}: {exc}", "raw error")
        if failures < FAILURES:
            report.fail(f"{label}: only {failures} writes failed: the disk never filled", "setup")
        report.note(f"{label}: warnings logged", len(logged.messages))
        try:  # reopened, still full: it holds everything (or says why it cannot open)
            with Memory.from_config(layout.config) as m:
                lost = missing_from(m, model, search=False)
                if lost:
                    report.lost += len(lost)
                    report.fail(f"{label}: reopened full, missing {lost[:3]}", "lost")
        except StoreError as exc:
            report.note(f"{label}: StoreError reopening full")
            if str(layout.root) not in str(exc):
                report.fail(f"{label}: the error names no file: {exc}", "unclear")
        except Exception as exc:
            report.fail(f"{label}: reopening raised {type(exc).__name__}: {exc}", "raw error")
        free()
        _after_undo(layout, model, label, report)
    finally:
        faiss_index.COMPACT_MIN = saved


def _fill_up(layout: Layout, m: Memory, model: Expected, label: str, report: DrillReport) -> int:
    """Write until :data:`FAILURES` calls failed, then compact; returns the failures."""
    failures = _check_writes(m, model, label, report, want_failures=FAILURES)
    try:
        m.vector_store.compact()  # type: ignore[attr-defined]
    except StoreError:
        report.note(f"{label}: StoreError on compact")
    except Exception as exc:
        report.fail(f"{label}: compact raised {type(exc).__name__}: {exc}", "raw error")
    if snapshot(m) != model:
        report.fail(f"{label}: a failed compaction changed the store", "made worse")
    user = USERS[2]
    code, stdout, output, error = cli_run(layout, ["add", "cli added memo", "--user-id", user])
    failed = cli_failed(code, output, error)
    if failed is not None:
        report.fail(f"{label}: memsift add {failed[1]}", failed[0])
    elif code == 0:
        for r in json.loads(stdout)["results"]:
            model.records[r["id"]] = (r["memory"], user)
            model.history[r["id"]] = [("ADD", r["memory"])]
    report.note(f"{label}: memsift add exit {code}")
    if snapshot(m) != model:
        report.fail(f"{label}: memsift add changed the store unlike it said", "made worse")
    return failures


def _copy_model(expected: Expected) -> Expected:
    return Expected(dict(expected.records), {k: list(v) for k, v in expected.history.items()})


def full_disk_case(
    pristine: Layout, expected: Expected, rng: random.Random, report: DrillReport
) -> None:
    """The full-disk case on a tmpfs when this process may mount, else under RLIMIT_FSIZE
    in a child process."""
    model = _copy_model(expected)
    if not can_mount():
        report.note("full disk by RLIMIT_FSIZE")
        _full_disk_in_child(pristine, model, report)
        return
    report.note("full disk by tmpfs")
    with tempfile.TemporaryDirectory(prefix="memsift-env-") as tmp:
        mount = Path(tmp)
        size = 8 * 1024 * 1024
        if not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)):
            report.fail("full disk: cannot mount a tmpfs", "setup")
            return
        try:
            layout = Layout(mount / "s")
            shutil.copytree(pristine.root, layout.root)
            filler = _fill(mount, ROOM + rng.randrange(64 * 1024))
            _full_disk(layout, model, lambda: filler.unlink(), report)
        finally:
            _umount(mount)


def _child(root: str, records: dict[str, Any], history: dict[str, Any], out: Any) -> None:
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
    layout = Layout(Path(root))
    largest = max(p.stat().st_size for p in layout.root.rglob("*") if p.is_file())
    soft, hard = largest + ROOM, resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    report = DrillReport("child")
    model = Expected(
        {k: tuple(v) for k, v in records.items()},
        {k: [tuple(e) for e in v] for k, v in history.items()},
    )

    def free() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))

    _full_disk(layout, model, free, report)
    out.put((report.attempts, report.lost, report.kinds, report.problems, report.notes))


def _full_disk_in_child(pristine: Layout, model: Expected, report: DrillReport) -> None:
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="memsift-env-") as tmp:
        root = Path(tmp) / "s"
        shutil.copytree(pristine.root, root)
        out = ctx.Queue()
        child = ctx.Process(target=_child, args=(str(root), model.records, model.history, out))
        child.start()
        child.join(300)
        if child.is_alive() or out.empty():
            child.kill()
            report.fail(
                f"full disk: the child ended {child.exitcode} without a report", "raw error"
            )
            return
        attempts, lost, kinds, problems, notes = out.get()
        report.attempts += attempts
        report.lost += lost
        for kind, n in kinds.items():
            report.kinds[kind] = report.kinds.get(kind, 0) + n
        report.problems.extend(problems)
        for key, n in notes.items():
            report.note(key, n)
