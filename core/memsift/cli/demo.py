"""``memsift demo``: the main job on the embedded default, start to finish.

Builds a store of example memories for three users (with category, priority and date
metadata), then runs scoped searches, filtered searches, and the same search with
reranking off and on, printing each table with its timings.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import click
from rich.panel import Panel

from memsift.cli.render import console, fail, print_comparison, print_results
from memsift.errors import MemsiftError
from memsift.memory import Memory

# (user, text, category, priority, date)
EXAMPLES: list[tuple[str, str, str, int, str]] = [
    ("alice", "I'm vegetarian and I love spicy Thai curries", "food", 2, "2026-01-04"),
    ("alice", "Allergic to peanuts - carry the epipen when eating out", "health", 3, "2026-01-05"),
    ("alice", "Favourite dinner is mushroom risotto with parmesan", "food", 1, "2026-01-09"),
    ("alice", "The Q3 roadmap review is due on Friday 14 March", "work", 3, "2026-03-10"),
    (
        "alice",
        "Weekly sync with the design team moved to Tuesdays at 10:00",
        "work",
        2,
        "2026-02-02",
    ),
    ("alice", "Flight to Lisbon on 2 May, seat 14C, booking ref QX7P2", "travel", 2, "2026-04-20"),
    ("alice", "Wants to learn to make fresh pasta this year", "food", 1, "2026-01-15"),
    ("alice", "Sister Maya's birthday is on 21 June; she likes orchids", "family", 3, "2026-02-11"),
    ("alice", "Runs 5 km every Sunday morning along the river", "health", 1, "2026-01-20"),
    ("alice", "Manager is Priya Raman; 1:1 every other Thursday", "work", 2, "2026-02-05"),
    (
        "alice",
        "Prefers aisle seats and vegetarian meals on long flights",
        "travel",
        1,
        "2026-03-01",
    ),
    ("alice", "Budget for the offsite must be approved by 30 April", "work", 3, "2026-04-01"),
    ("alice", "Dentist appointment on 9 April at 08:30", "health", 2, "2026-03-28"),
    ("alice", "Hates coriander; says it tastes like soap", "food", 1, "2026-01-06"),
    ("bob", "Bob's daughter Maya starts primary school in September", "family", 3, "2026-02-14"),
    ("bob", "Drinks green tea in the morning, never coffee after noon", "food", 1, "2026-01-03"),
    ("bob", "Maya's birthday party is on 8 August at the climbing hall", "family", 3, "2026-05-02"),
    (
        "bob",
        "Working on the billing migration; cut-over planned for 12 May",
        "work",
        3,
        "2026-04-15",
    ),
    ("bob", "Likes sourdough pizza from the place on Elm Street", "food", 2, "2026-01-22"),
    ("bob", "Has a bad knee - avoid suggesting long hikes", "health", 2, "2026-02-20"),
    ("bob", "Planning a camping trip to the Lake District in July", "travel", 2, "2026-03-18"),
    (
        "bob",
        "On-call rotation: every fourth week, next one starts 6 April",
        "work",
        2,
        "2026-03-30",
    ),
    ("bob", "Wife Sara is a cellist with the city orchestra", "family", 1, "2026-01-30"),
    ("bob", "Learning Spanish on weekday evenings", "personal", 1, "2026-02-25"),
    ("bob", "Car insurance renews on 1 June; compare quotes before", "personal", 2, "2026-05-10"),
    (
        "bob",
        "Favourite cuisine is Ethiopian, especially injera with lentils",
        "food",
        1,
        "2026-01-28",
    ),
    ("bob", "Performance review with Tom on 3 June", "work", 3, "2026-05-20"),
    ("carol", "Carol is training for the Berlin marathon in September", "health", 3, "2026-01-10"),
    ("carol", "Eats a high-protein breakfast: eggs, oats and yoghurt", "food", 1, "2026-01-11"),
    ("carol", "Leads the data platform team of six engineers", "work", 2, "2026-01-12"),
    ("carol", "Visa for the Tokyo conference must be filed by 15 May", "travel", 3, "2026-04-25"),
    ("carol", "Gluten intolerant; no bread or regular pasta", "health", 3, "2026-01-13"),
    ("carol", "Hiring two backend engineers this quarter", "work", 3, "2026-02-18"),
    ("carol", "Her cat Miso needs thyroid pills twice a day", "family", 2, "2026-03-05"),
    ("carol", "Loves Japanese food, especially ramen and onigiri", "food", 1, "2026-02-08"),
    ("carol", "Quarterly planning offsite is in Porto on 22 April", "work", 2, "2026-03-22"),
    ("carol", "Wants a window seat on every flight", "travel", 1, "2026-03-23"),
    ("carol", "Brother Leo is getting married on 19 September", "family", 3, "2026-04-02"),
    ("carol", "Reads one science-fiction novel a month", "personal", 1, "2026-02-27"),
    ("carol", "Prefers async updates over meetings before 10:00", "work", 1, "2026-01-25"),
]


def build_store(path: Path) -> Memory:
    memory = Memory.from_config(
        {
            "vector_store": {"provider": "faiss", "config": {"path": str(path)}},
            "reranker": {"provider": "bm25", "config": {}},
            "history_db_path": str(path / "history.db"),
        }
    )
    memory.reset()
    for user in ("alice", "bob", "carol"):
        for u, text, category, priority, date in EXAMPLES:
            if u == user:
                memory.add(
                    text,
                    user_id=user,
                    metadata={"category": category, "priority": priority, "date": date},
                    infer=False,
                )
    return memory


def run_demo(path: str | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="memsift-demo-") as tmp:
        where = Path(path).expanduser() if path else Path(tmp)
        console.print(
            Panel.fit(
                "memsift demo: an embedded store (FAISS over SQLite, MiniLM ONNX embedder), "
                f"{len(EXAMPLES)} memories for alice, bob and carol, reranked with bm25",
                title="memsift",
            )
        )
        started = time.perf_counter()
        memory = build_store(where)
        console.print(
            f"stored {len(EXAMPLES)} memories in {where} "
            f"({(time.perf_counter() - started) * 1000:.0f} ms, model included)\n"
        )
        with memory:
            steps: list[tuple[str, dict[str, Any]]] = [
                (
                    "1. A scoped search: only alice's memories can come back",
                    {"query": "what should I cook for her tonight?", "user_id": "alice"},
                ),
                (
                    "2. Filtered: alice's work items with priority >= 2",
                    {
                        "query": "deadlines coming up",
                        "filters": {
                            "user_id": "alice",
                            "category": "work",
                            "priority": {"gte": 2},
                        },
                    },
                ),
                (
                    "3. Logical filters: carol's travel OR anything of priority 3",
                    {
                        "query": "what must be done before the trip?",
                        "filters": {
                            "AND": [
                                {"user_id": "carol"},
                                {"OR": [{"category": "travel"}, {"priority": 3}]},
                            ]
                        },
                    },
                ),
            ]
            for title, args in steps:
                console.rule(title)
                query = args.pop("query")
                response = memory.search(query, top_k=5, rerank=False, **args)
                print_results(response, title=f"query: {query}")
                console.print()
            console.rule("4. Reranking off vs on: names and dates are where bm25 helps")
            for query, user in (
                ("When is Maya's birthday?", "bob"),
                ("Who is Priya?", "alice"),
            ):
                off = memory.search(query, user_id=user, top_k=5, rerank=False)
                on = memory.search(query, user_id=user, top_k=5, rerank=True)
                print_comparison(f"{query} (user {user})", off, on)
                console.print()
            console.rule("5. Scoping: the same question for another user sees only their memories")
            response = memory.search("When is Maya's birthday?", user_id="alice", top_k=3)
            print_results(response, title="query: When is Maya's birthday? (user alice)")
        console.print(
            "\nTry it yourself: [bold]memsift add[/], [bold]memsift search[/], "
            "[bold]memsift compare[/] (see memsift --help)."
        )


@click.command()
@click.option("--path", type=click.Path(file_okay=False), help="keep the demo store here")
def demo(path: str | None) -> None:
    """Build a small store of example memories and run scoped, filtered, reranked searches."""
    try:
        run_demo(path)
    except MemsiftError as exc:
        fail(exc)
