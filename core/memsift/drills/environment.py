"""The corruption and hostile-environment drill: damage a closed store's files, or constrain
its folder (read-only, a full disk), then drive the public API and the CLI on it.

A store of a few users (with updates and deletes, so each memory has a history) is built and
closed once; each case works on a copy. The invariant, per case:

- the store either opens and holds every memory it held (each found top-1 by its own text in
  its scope, its history intact) -- for a damaged index or sidecar after a rebuild with a
  logged warning -- or the call raises a :class:`~memsift.errors.StoreError` that names the
  damaged file; never another exception, never a traceback on the command line;
- never silent loss: a store that opens over a damaged SQLite file and lacks a memory fails;
- never worse than before: a call that fails leaves the SQLite and history files byte for
  byte as they were, and once the damage is undone (the file restored, the folder writable
  again, space freed) the store works and holds everything acknowledged.

The store and its checks are in :mod:`memsift.drills.environment_store`; the read-only and
full-disk cases in :mod:`memsift.drills.environment_limits`.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memsift.drills.environment_limits import full_disk_case, read_only_cases
from memsift.drills.environment_store import (
    USERS,
    Expected,
    Layout,
    build,
    check_cli,
    drive,
    missing_from,
    warnings_logged,
)
from memsift.drills.report import DrillReport
from memsift.errors import MemsiftError, StoreError
from memsift.memory import Memory

#: The outcomes a case may end in.
REBUILD, ERROR, EITHER = "rebuild", "error", "either"
#: The outcome of a history file cut to zero bytes: SQLite reads it as an empty database, so
#: the store opens with every memory and a new, empty history (a documented limit).
MEMORIES = "memories"


def check_open(
    layout: Layout, expected: Expected, outcome: str, label: str, report: DrillReport
) -> bool:
    """Open the damaged store and check the invariant; True when it opened."""
    if outcome == MEMORIES:
        expected = Expected(dict(expected.records), {i: [] for i in expected.records})
    before = layout.truth()
    with warnings_logged() as logged:
        code = check_cli(layout, expected, label, report)
        try:
            m = Memory.from_config(layout.config)
        except StoreError as exc:
            _check_error(layout, exc, before, outcome, label, report)
            return False
        except MemsiftError as exc:
            report.fail(f"{label}: {type(exc).__name__} instead of StoreError: {exc}", "unclear")
            return False
        except Exception as exc:  # the drill's point: see what escapes
            report.fail(f"{label}: raw {type(exc).__name__}: {exc}", "raw error")
            return False
    if code == 2:
        report.fail(f"{label}: the CLI failed on a store that opens", "cli")
    with m:
        lost = missing_from(m, expected)
        if lost:
            report.lost += len(lost)
            report.fail(f"{label}: opened without {len(lost)}: {lost[:3]}", "silent loss")
            return True
        if outcome == ERROR:
            report.fail(f"{label}: the damage went unnoticed", "unnoticed")
        if outcome == REBUILD and not logged.messages:
            report.fail(f"{label}: rebuilt without a warning", "no warning")
        report.note("rebuilt" if logged.messages else "opened")
        after = drive(m, expected, USERS[0])
    with Memory.from_config(layout.config) as again:
        lost = missing_from(again, after)
    if lost:
        report.lost += len(lost)
        report.fail(f"{label}: after a reopen, missing {lost[:3]}", "lost")
    return True


def _check_error(
    layout: Layout,
    exc: StoreError,
    before: dict[str, str | None],
    outcome: str,
    label: str,
    report: DrillReport,
) -> None:
    text = str(exc)
    if outcome == REBUILD:
        report.fail(f"{label}: an error where a rebuild was due: {text}", "no rebuild")
    if not any(str(p) in text for p in (layout.db, layout.history, layout.root)):
        report.fail(f"{label}: the error names no file: {text}", "unclear")
    if layout.truth() != before:
        report.fail(f"{label}: the failed open changed the files", "made worse")
    report.note(f"StoreError at open ({label.split(' ')[0]})")


# --------------------------------------------------------------------------- the damage


def _truncate(path: Path, size: int) -> None:
    with path.open("r+b") as handle:
        handle.truncate(max(size, 0))


def _garbage(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


Damage = Callable[[Layout, random.Random], None]


def _index_damage() -> list[tuple[str, Damage, str]]:
    def missing(lay: Layout, rng: random.Random) -> None:
        lay.index.unlink()

    def truncated(lay: Layout, rng: random.Random) -> None:
        _truncate(lay.index, rng.randrange(lay.index.stat().st_size))

    def same_size(lay: Layout, rng: random.Random) -> None:
        lay.index.write_bytes(_garbage(rng, lay.index.stat().st_size))

    def other_size(lay: Layout, rng: random.Random) -> None:
        lay.index.write_bytes(_garbage(rng, rng.randrange(1, 3 * lay.index.stat().st_size)))

    def flipped(lay: Layout, rng: random.Random) -> None:
        data = bytearray(lay.index.read_bytes())
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        lay.index.write_bytes(bytes(data))

    def sidecar_missing(lay: Layout, rng: random.Random) -> None:
        lay.sidecar.unlink()

    def sidecar_garbage(lay: Layout, rng: random.Random) -> None:
        lay.sidecar.write_bytes(_garbage(rng, rng.randrange(1, 400)))

    def sidecar_shape(lay: Layout, rng: random.Random) -> None:
        stamp = json.loads(lay.sidecar.read_text())
        shapes: list[Any] = [
            [stamp],
            "stamp",
            None,
            {**stamp, "generation": str(stamp["generation"])},
            {**stamp, "sha256": None, "bytes": -1},
            {k: v for k, v in stamp.items() if k != "epoch"},
        ]
        lay.sidecar.write_text(json.dumps(rng.choice(shapes)))

    def sidecar_later(lay: Layout, rng: random.Random) -> None:
        # what a save by another process looks like mid-read: rebuilt, logged at INFO only
        stamp = json.loads(lay.sidecar.read_text())
        lay.sidecar.write_text(json.dumps({**stamp, "generation": stamp["generation"] + 5}))

    return [
        ("index missing", missing, REBUILD),
        ("index truncated", truncated, REBUILD),
        ("index garbage same size", same_size, REBUILD),
        ("index garbage other size", other_size, REBUILD),
        ("index bit flipped", flipped, REBUILD),
        ("sidecar missing", sidecar_missing, REBUILD),
        ("sidecar garbage", sidecar_garbage, REBUILD),
        ("sidecar wrong shape", sidecar_shape, REBUILD),
        ("sidecar of a later save", sidecar_later, EITHER),
    ]


def _sqlite_damage() -> list[tuple[str, Damage, str]]:
    def page_size(path: Path) -> int:
        raw = int.from_bytes(path.read_bytes()[16:18], "big")
        return 65536 if raw == 1 else raw

    def header_only(lay: Layout, rng: random.Random) -> None:
        _truncate(lay.db, 100)

    def half(lay: Layout, rng: random.Random) -> None:
        _truncate(lay.db, lay.db.stat().st_size // 2)

    def page_short(lay: Layout, rng: random.Random) -> None:
        _truncate(lay.db, lay.db.stat().st_size - page_size(lay.db))

    def random_length(lay: Layout, rng: random.Random) -> None:
        _truncate(lay.db, rng.randrange(1, lay.db.stat().st_size))

    def garbage(lay: Layout, rng: random.Random) -> None:
        lay.db.write_bytes(_garbage(rng, lay.db.stat().st_size))

    def zero(lay: Layout, rng: random.Random) -> None:
        _truncate(lay.db, 0)

    def missing(lay: Layout, rng: random.Random) -> None:
        lay.db.unlink()

    def wal_garbage(lay: Layout, rng: random.Random) -> None:
        Path(f"{lay.db}-wal").write_bytes(_garbage(rng, rng.randrange(1, 50_000)))
        Path(f"{lay.db}-shm").write_bytes(_garbage(rng, 32_768))

    def wal_torn(lay: Layout, rng: random.Random) -> None:
        # a WAL header of this database and a torn first frame: nothing to replay
        wal = _real_wal(lay.db)
        size = page_size(lay.db)
        Path(f"{lay.db}-wal").write_bytes(wal[: rng.randrange(1, 32 + 24 + size)])
        Path(f"{lay.db}-shm").write_bytes(_garbage(rng, rng.randrange(1, 32_768)))

    def history_truncated(lay: Layout, rng: random.Random) -> None:
        _truncate(lay.history, rng.choice([100, lay.history.stat().st_size // 2]))

    def history_garbage(lay: Layout, rng: random.Random) -> None:
        lay.history.write_bytes(_garbage(rng, lay.history.stat().st_size))

    def history_zero(lay: Layout, rng: random.Random) -> None:
        _truncate(lay.history, 0)

    return [
        ("sqlite header only", header_only, ERROR),
        ("sqlite half", half, ERROR),
        ("sqlite one page short", page_short, EITHER),
        ("sqlite random length", random_length, EITHER),
        ("sqlite garbage", garbage, ERROR),
        ("sqlite zero bytes", zero, ERROR),
        ("sqlite missing", missing, ERROR),
        ("wal garbage", wal_garbage, EITHER),
        ("wal torn", wal_torn, EITHER),
        ("history truncated", history_truncated, ERROR),
        ("history garbage", history_garbage, ERROR),
        ("history zero bytes", history_zero, MEMORIES),
    ]


def _real_wal(db: Path) -> bytes:
    """The first bytes of a WAL written for a copy of ``db`` (a valid header)."""
    import sqlite3

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.sqlite3"
        shutil.copyfile(db, copy)
        conn = sqlite3.connect(copy, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.execute("INSERT INTO meta(key, value) VALUES('drill', 'x')")
            return Path(f"{copy}-wal").read_bytes()
        finally:
            conn.close()


def damage_cases() -> list[tuple[str, Damage, str]]:
    """Every file-damage case: (label, damage, the outcome it must end in)."""
    return [*_index_damage(), *_sqlite_damage()]


def one_case(
    pristine: Layout,
    expected: Expected,
    label: str,
    damage: Damage,
    outcome: str,
    rng: random.Random,
    report: DrillReport,
) -> None:
    """Damage a copy of ``pristine`` and check it; after an error, undo the damage (put the
    pristine files back) and check the store is whole again."""
    with tempfile.TemporaryDirectory(prefix="memsift-env-") as tmp:
        layout = Layout(Path(tmp) / "s")
        shutil.copytree(pristine.root, layout.root)
        damage(layout, rng)
        report.attempts += 1
        if check_open(layout, expected, outcome, label, report):
            return
        for name in ("store/memsift.sqlite3", "history.db"):
            shutil.copyfile(pristine.root / name, layout.root / name)
        for leftover in ("store/memsift.sqlite3-wal", "store/memsift.sqlite3-shm"):
            (layout.root / leftover).unlink(missing_ok=True)
        try:
            with Memory.from_config(layout.config) as m:
                lost = missing_from(m, expected)
        except Exception as exc:
            report.fail(f"{label}: restored, it does not open: {exc!r}", "made worse")
            return
        if lost:
            report.lost += len(lost)
            report.fail(f"{label}: restored, it lacks {lost[:3]}", "made worse")


def environment_drill(rounds: int = 1, *, seed: int = 0) -> DrillReport:
    """Every damage case ``rounds`` times (random lengths and bytes per round), and the three
    read-only cases and the full-disk case once per round."""
    report = DrillReport("corruption and hostile environment")
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="memsift-env-") as tmp:
        pristine = Layout(Path(tmp) / "pristine")
        expected = build(pristine, rng)
        for _ in range(rounds):
            for label, damage, outcome in damage_cases():
                one_case(pristine, expected, label, damage, outcome, rng, report)
            read_only_cases(pristine, expected, report)
            full_disk_case(pristine, expected, rng, report)
    return report
