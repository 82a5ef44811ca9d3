"""The built-in `faiss` store shared by several processes (like web workers on one path).

Every process must see the others' committed writes on its next call, no write may fail
because another process wrote, and a fresh open must hold exactly what was acknowledged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from memsift import Memory
from memsift.builtin.faiss import FaissStore, FaissStoreConfig
from memsift.filters import parse_filter
from memsift.interfaces import EmbedderIdentity

DIMS = 32
IDENT = EmbedderIdentity("test", "unit", DIMS)
TIMEOUT_S = 120


def vector(key: str) -> Any:
    """The same unit vector for a key in every process (``hash()`` is salted per process)."""
    v = np.random.default_rng(zlib.crc32(key.encode())).normal(size=DIMS).astype(np.float32)
    return v / np.linalg.norm(v)


# A worker driving the store directly: single and batched adds, updates (a new vector, or
# only the text) and deletes of its own earlier ids, and searches for its own memories.
# Compaction is made frequent so that slots are renumbered under the other process's feet.
STORE_WORKER = textwrap.dedent(
    """
    import json, os, sys, time, zlib
    import numpy as np
    from memsift.builtin.faiss import index as faiss_index
    from memsift.builtin.faiss import FaissStore, FaissStoreConfig
    from memsift.filters import parse_filter
    from memsift.interfaces import EmbedderIdentity, MemoryRecord

    path, name, ops, seed, go = sys.argv[1:6]
    faiss_index.COMPACT_MIN = 30
    faiss_index.COMPACT_SHARE = 0.05
    DIMS = 32
    STAMP = "2026-01-01T00:00:00.000000+00:00"

    def vector(key):
        v = np.random.default_rng(zlib.crc32(key.encode())).normal(size=DIMS)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def record(mid, key):
        return MemoryRecord(id=mid, memory=f"text {key}", hash=key, metadata={"key": key},
                            user_id=name, created_at=STAMP, updated_at=STAMP)

    store = FaissStore(FaissStoreConfig(path=path))
    store.open(EmbedderIdentity("test", "unit", DIMS))
    scope = parse_filter({"user_id": name})
    rng = np.random.default_rng(int(seed))
    live = {}  # id -> the key of its current vector
    failures, wrong, epochs = [], 0, set()
    open(f"{go}.{name}", "w").close()  # ready
    while not os.path.exists(go):
        time.sleep(0.002)
    started = time.perf_counter()
    interleaved = 0  # ops that found the other process's writes since this one's last op
    for i in range(int(ops)):
        r = rng.random()
        before = store.stats()["generation"]
        try:
            if r < 0.6 or len(live) < 5:
                n = 1 if r < 0.35 else int(rng.integers(2, 6))
                ids = [f"{name}-{i}-{j}" for j in range(n)]
                store.insert([record(x, x) for x in ids], np.stack([vector(x) for x in ids]))
                live.update({x: x for x in ids})
            elif r < 0.7:
                mid = sorted(live)[int(rng.integers(len(live)))]
                key = f"{mid}@{i}"
                new_vector = r < 0.66
                store.update(record(mid, key if new_vector else live[mid]),
                             vector(key) if new_vector else None)
                if new_vector:
                    live[mid] = key
            elif r < 0.9:
                pool = sorted(live)
                picks = list({pool[int(k)] for k in rng.integers(len(pool), size=3)})
                got = store.delete(picks)
                for x in picks:
                    del live[x]
                if got != len(picks):
                    failures.append(f"delete removed {got} of {len(picks)}")
            else:
                mid = sorted(live)[int(rng.integers(len(live)))]
                hits = store.search(vector(live[mid]), filters=scope, limit=1)
                wrong += not hits or hits[0].record.id != mid
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
        after = store.stats()
        epochs.add(after.get("epoch"))
        interleaved += after["generation"] > before + 1
        time.sleep(float(rng.random()) * 0.001)  # the gap between two requests
    seconds = time.perf_counter() - started
    store.close()
    print(json.dumps({"live": live, "failures": failures, "wrong": wrong, "ops": int(ops),
                      "seconds": seconds, "epochs": len(epochs),
                      "interleaved": interleaved}))
    """
)


def _run_together(script: str, path: Path, args: list[list[str]]) -> list[dict[str, Any]]:
    """Start one process per argument list, release them at once, collect their JSON."""
    go = path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path), *a, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a in args
    ]
    deadline = time.monotonic() + TIMEOUT_S
    while not all(Path(f"{go}.{a[0]}").exists() for a in args):
        assert time.monotonic() < deadline, "the workers did not start"
        assert all(p.poll() is None for p in procs), "a worker died before it was ready"
        time.sleep(0.01)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=TIMEOUT_S)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_two_processes_adding_updating_and_deleting_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store"
    first = FaissStore(FaissStoreConfig(path=str(path)))
    first.open(IDENT)  # created before the race
    first.close()
    ops = 300
    started = time.perf_counter()
    a, b = _run_together(STORE_WORKER, path, [["a", str(ops), "1"], ["b", str(ops), "2"]])
    elapsed = time.perf_counter() - started
    for name, result in (("a", a), ("b", b)):
        assert result["failures"] == [], f"{name}: {result['failures'][:5]}"
        assert result["wrong"] == 0, f"{name} did not find its own memory top-1"
        assert result["ops"] == ops
    assert a["epochs"] + b["epochs"] > 2, "no compaction happened during the run"
    assert min(a["interleaved"], b["interleaved"]) >= 5, "the two processes did not overlap"
    store = FaissStore(FaissStoreConfig(path=str(path)))
    store.open(IDENT)
    for name, result in (("a", a), ("b", b)):
        scope = parse_filter({"user_id": name})
        stored = {r.id: r.hash for r in store.list_records(filters=scope, limit=10**6)}
        assert stored == result["live"]
        for mid, key in result["live"].items():
            hits = store.search(vector(key), filters=scope, limit=1)
            assert [h.record.id for h in hits] == [mid]
    assert store.count() == len(a["live"]) + len(b["live"])
    assert store.stats()["live"] == store.count()
    store.close()
    assert elapsed < 60


# The same through the public API, with a fast deterministic embedder.
API_WORKER = textwrap.dedent(
    """
    import json, os, random, sys, time, zlib
    from memsift import Memory

    path, name, ops, seed, go = sys.argv[1:6]
    cfg = {
        "embedder": {"provider": "hashing", "config": {"dims": 1024}},
        "vector_store": {"provider": "faiss", "config": {"path": path}},
    }
    rng = random.Random(int(seed))
    live, failures, wrong = {}, [], 0
    with Memory.from_config(cfg) as m:
        open(f"{go}.{name}", "w").close()  # ready
        while not os.path.exists(go):
            time.sleep(0.002)
        for i in range(int(ops)):
            r = rng.random()
            try:
                if r < 0.6 or len(live) < 3:
                    n = 1 if r < 0.35 else rng.randint(2, 4)
                    # three words no other text has: the hashing embedder never ties two
                    texts = [f"{name} note{i}x{j} w{zlib.crc32(f'{name}{i}{j}'.encode())} "
                             f"z{zlib.adler32(f'{name}{j}{i}'.encode())}" for j in range(n)]
                    out = m.add(texts[0] if n == 1 else texts, user_id=name)
                    live.update({x["id"]: x["memory"] for x in out["results"]})
                elif r < 0.85:
                    mid = rng.choice(sorted(live))
                    m.delete(mid)
                    del live[mid]
                else:
                    mid = rng.choice(sorted(live))
                    hits = m.search(live[mid], user_id=name, top_k=1)["results"]
                    wrong += [h["id"] for h in hits] != [mid]
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
    print(json.dumps({"live": live, "failures": failures, "wrong": wrong}))
    """
)


def api_config(path: Path) -> dict[str, Any]:
    return {
        "embedder": {"provider": "hashing", "config": {"dims": 1024}},
        "vector_store": {"provider": "faiss", "config": {"path": str(path)}},
    }


def test_two_processes_through_the_public_api(tmp_path: Path) -> None:
    path = tmp_path / "store"
    Memory.from_config(api_config(path)).close()
    a, b = _run_together(API_WORKER, path, [["a", "120", "1"], ["b", "120", "2"]])
    for result in (a, b):
        assert result["failures"] == [] and result["wrong"] == 0
    with Memory.from_config(api_config(path)) as m:
        for name, result in (("a", a), ("b", b)):
            stored = {r["id"] for r in m.get_all(user_id=name, top_k=10**6)["results"]}
            assert stored == set(result["live"])
            for mid, text in result["live"].items():
                hits = m.search(text, user_id=name, top_k=1)["results"]
                assert [h["id"] for h in hits] == [mid]


# A long-lived process that answers commands on stdin, one JSON line each.
PEER = textwrap.dedent(
    """
    import json, sys
    from memsift import Memory
    cfg = {
        "embedder": {"provider": "hashing", "config": {"dims": 1024}},
        "vector_store": {"provider": "faiss", "config": {"path": sys.argv[1]}},
    }
    with Memory.from_config(cfg) as m:
        print(json.dumps("ready"), flush=True)
        for line in sys.stdin:
            op, arg = json.loads(line)
            if op == "add":
                out = m.add(arg, user_id="u")["results"][0]["id"]
            elif op == "search":
                out = [h["id"] for h in m.search(arg, user_id="u", top_k=1)["results"]]
            elif op == "delete":
                m.delete(arg)
                out = True
            else:
                break
            print(json.dumps(out), flush=True)
    """
)


class Peer:
    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PEER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.ask_line() == "ready"

    def ask_line(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the peer process died"
        return json.loads(line)

    def ask(self, op: str, arg: str) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps([op, arg]) + "\n")
        self.proc.stdin.flush()
        return self.ask_line()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=TIMEOUT_S)


def test_each_process_sees_the_others_commits_on_its_next_call(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Memory.from_config(api_config(path)) as m:
        mine = m.add("the kettle is in the blue cupboard", user_id="u")["results"][0]["id"]
        assert [h["id"] for h in m.search("blue cupboard kettle", user_id="u")["results"]] == [mine]
        peer = Peer(path)
        try:
            theirs = peer.ask("add", "my sister Ada lives in Lisbon")
            # the very next calls here see the peer's committed add
            assert m.get(theirs)["memory"] == "my sister Ada lives in Lisbon"
            hits = m.search("my sister Ada lives in Lisbon", user_id="u", top_k=1)["results"]
            assert [h["id"] for h in hits] == [theirs]
            # and the other way round
            assert peer.ask("search", "the kettle is in the blue cupboard") == [mine]
            later = m.add("the bicycle pump is in the garage", user_id="u")["results"][0]["id"]
            assert peer.ask("search", "the bicycle pump is in the garage") == [later]
            # deletes too
            assert peer.ask("delete", later) is True
            hits = m.search("the bicycle pump is in the garage", user_id="u")["results"]
            assert later not in [h["id"] for h in hits]
        finally:
            peer.close()
    with Memory.from_config(api_config(path)) as m:
        ids = {r["id"] for r in m.get_all(user_id="u")["results"]}
        assert ids == {mine, theirs}


def test_workers_on_a_fresh_path_can_start_together(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import json, os, sys, time
        from memsift import Memory
        path, name, go = sys.argv[1], sys.argv[2], sys.argv[3]
        open(f"{go}.{name}", "w").close()  # ready
        while not os.path.exists(go):
            time.sleep(0.001)
        cfg = {
            "embedder": {"provider": "hashing", "config": {"dims": 1024}},
            "vector_store": {"provider": "faiss", "config": {"path": path}},
        }
        with Memory.from_config(cfg) as m:
            out = m.add(f"hello from {name}", user_id="u")["results"][0]["id"]
        print(json.dumps({"id": out}))
        """
    )
    path = tmp_path / "fresh"
    path.mkdir()
    results = _run_together(script, path, [["a"], ["b"], ["c"]])
    with Memory.from_config(api_config(path)) as m:
        ids = {r["id"] for r in m.get_all(user_id="u")["results"]}
    assert ids == {r["id"] for r in results}
    assert not [n for n in os.listdir(path) if n.endswith(".tmp")], "a temporary file was left"
