"""The secrets drill: an API key never shows, wherever a user, a log or an error tracker looks.

For each hosted target (a provider with a fake of its API on 127.0.0.1, see
:class:`~memsift.drills.secret_targets.Target`), with the key given in the config and,
separately, through each of its environment variables (and any other place the target
names, e.g. an LLM reranker's nested ``llm`` config), and with every logger at DEBUG (the
root, memsift's, and the SDKs' own: :func:`~memsift.drills.secret_scan.capture_logs`), the
drill runs a successful ``add`` and ``search``, then failing ones: a 401 whose body echoes the
key (as JSON and as raw text), a 500 echoing it, a hang past the timeout and a refused
connection; a reranker both falling back and raising; through ``Memory``, and with the key in
the config through ``AsyncMemory`` too (the SDKs' async clients). The invariant: the key, in
its plain form or an obvious encoding (:func:`~memsift.drills.secret_scan.secret_forms`:
lower- or upper-cased, base64 at any byte offset, URL-quoted, JSON-escaped, hex), is in none
of

- the log records (message, arguments, extra fields, exception and stack text);
- ``repr``/``str`` of the Memory, its providers (nested ones too), their configs, the
  MemoryConfig, their ``model_dump()`` / JSON dumps and ``to_dict()``;
- a raised exception: its message, args and notes, every exception reachable from it
  (causes, contexts, groups, exceptions held by its frames), the formatted traceback, and
  the local variables of the frames it passed through below the caller's (what an error
  tracker shows);
- the answer of a call (a search's ``rerank`` block);
- ``memsift plugins`` (``--json``, ``--all``) with the key in every variable of the target,
  and the output and error output of ``memsift search`` / ``memsift add`` (``--json`` too)
  with ``--config`` holding the key, against a fake answering 401 with the key echoed, and
  with a config that is wrong beside the key or in it (an unknown option, a wrong-typed key).

A call whose success or fault was not seen (no request reached the fake, a fault that did not
make the call fail or fall back, a CLI run with another exit status) is a failure too, of kind
``not-exercised``: the drill vouches only for what it did. Other kinds: ``logs``, ``repr``,
``exception``, ``response``, ``cli``, ``undocumented-error`` (an exception that is not a
:class:`~memsift.errors.MemsiftError`) and ``drill-error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from memsift.drills.report import DrillReport
from memsift.drills.secret_scan import (
    LogCapture,
    capture_logs,
    exception_leaks,
    find_secret,
    memory_objects,
    object_leaks,
)
from memsift.drills.secret_targets import (
    FAULTS,
    MESSAGE,
    QUERY,
    SUCCESS_TIMEOUT,
    TEXTS,
    TIMEOUT,
    USER,
    Served,
    Target,
    closed_url,
    environment,
    key_options,
    key_source,
    new_secret,
    script_fault,
    slug,
    wrap_secret,
)
from memsift.errors import MemsiftError

# --------------------------------------------------------------------------- one run


Op = tuple[str, Callable[[Any], Any]]


def operations(kind: str) -> list[Op]:
    """The calls that reach a target of ``kind``: an add (with ``infer`` for an llm), and a
    search (reranked for a reranker)."""
    add: Op = ("add", lambda m: m.add(TEXTS, user_id=USER))
    if kind == "llm":
        add = ("add(infer)", lambda m: m.add(MESSAGE, user_id=USER, infer=True))
    search: Op = ("search", lambda m: m.search(QUERY, user_id=USER, rerank=kind == "reranker"))
    return [add, search]


class _Run:
    """One target with its key from one source; failures go to ``report``."""

    def __init__(
        self, target: Target, source: str, secret: str, root: Path, report: DrillReport
    ) -> None:
        self.target = target
        self.source = source
        self.secret = secret
        self.root = root
        self.report = report
        self.api_key: str | None = None
        self.served: Served | None = None
        #: the event loop of the ``AsyncMemory`` calls (None: ``Memory``)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._dirs = 0

    def fail(self, scenario: str, problem: str, kind: str) -> None:
        self.report.fail(f"{self.target.name}, key in {self.source}, {scenario}: {problem}", kind)

    def check(self, scenario: str, leaks: list[str], kind: str) -> None:
        for leak in leaks:
            self.fail(scenario, f"the key shows in {leak}", kind)

    def config(self, base_url: str | None = None, **options: Any) -> dict[str, Any]:
        assert self.served is not None
        self._dirs += 1
        tmp = self.root / f"m{self._dirs}"
        tmp.mkdir(parents=True)
        url = self.served.base_url if base_url is None else base_url
        given = key_options(self.target).get(self.source)
        if given is not None:
            options = {**given(self.secret), **options}
        options = {"timeout": TIMEOUT, **options}
        return self.target.memory_config(tmp, url, self.api_key, **options)

    def drive(self) -> None:
        """The whole run: the key from its source, the fake served, the API, the CLI."""
        source = key_source(self.target, self.source, self.secret)
        with source as api_key, self.target.serve(self.secret) as served:
            self.api_key, self.served = api_key, served
            self.api()
            if self.source == "config":  # once: the key's way there is the same
                self.url_credentials()
                self.loop = asyncio.new_event_loop()
                try:
                    self.api("async ")
                finally:
                    self.loop.close()
                    self.loop = None
            self.cli()
            self.plugins()

    # ------------------------------------------------------------------ the API

    @contextlib.contextmanager
    def memory(self, config: dict[str, Any], scenario: str, *, reprs: bool = True) -> Iterator[Any]:
        """A ``Memory`` (an ``AsyncMemory`` while :attr:`loop` is set), its reprs checked
        unless not ``reprs``."""
        from memsift.async_memory import AsyncMemory
        from memsift.memory import Memory

        loop = self.loop
        try:
            memory: Any = (Memory if loop is None else AsyncMemory).from_config(config)
        except Exception as exc:
            self.fail(scenario, f"the Memory did not open: {type(exc).__name__}", "not-exercised")
            self.check(f"{scenario}, open", exception_leaks(exc, self.secret), "exception")
            yield None
            return
        try:
            if reprs:
                self.check(scenario, object_leaks(memory_objects(memory), self.secret), "repr")
            yield memory
        finally:
            if loop is None:
                memory.close()
            else:
                loop.run_until_complete(memory.aclose())

    def call(self, memory: Any, op: Op, scenario: str, expect: str) -> None:
        """Run ``op`` and check its answer or its error. ``expect``: ``"ok"`` (a reranked
        search must be reranked), ``"error"``, ``"fallback"`` (a reranked search that
        falls back to vector order and says why), or ``"any"`` outcome."""
        name, run = op
        where = f"{scenario}, {name}"
        self.report.attempts += 1
        try:
            out = run(memory)
            if self.loop is not None:
                self.report.note("async calls")
                out = self.loop.run_until_complete(out)
        except MemsiftError as exc:
            if expect == "error":
                self.report.note("errors checked")
            self.check(where, exception_leaks(exc, self.secret), "exception")
            if expect not in ("error", "any"):
                self.fail(where, f"it raised {type(exc).__name__}: {exc}", "not-exercised")
            return
        except Exception as exc:
            self.check(where, exception_leaks(exc, self.secret), "exception")
            self.fail(where, f"an undocumented {type(exc).__name__}", "undocumented-error")
            return
        found = find_secret(json.dumps(out, default=str), self.secret)
        if found is not None:
            self.fail(where, f"the key shows in the answer: {found}", "response")
        if expect == "error":
            self.fail(where, "it did not fail", "not-exercised")
        block = out.get("rerank") if isinstance(out, dict) else None
        if name == "search" and self.target.kind == "reranker":
            applied = isinstance(block, dict) and block.get("applied") is True
            fell_back = isinstance(block, dict) and not applied and bool(block.get("error"))
            if fell_back and expect == "fallback":
                self.report.note("fallbacks checked")
            if (expect == "ok" and not applied) or (expect == "fallback" and not fell_back):
                self.fail(where, f"the rerank block is {block!r}", "not-exercised")

    def expect(self, op: Op, mode: str) -> str | None:
        """What a faulty call gives; None: it does not reach the target (a reranker's add,
        an llm's search), so it is not run."""
        if self.target.kind == "llm":
            return "error" if op[0] != "search" else None
        if self.target.kind == "embedder":
            return "error"
        if op[0] != "search":
            return None
        return "fallback" if mode.endswith("fallback") else "error"

    def api(self, flavour: str = "") -> None:
        """Success, then each fault, in each mode (a reranker: falling back, raising)."""
        served = self.served
        assert served is not None
        ops = operations(self.target.kind)
        modes: list[tuple[str, dict[str, Any]]] = [("fallback", {})]
        if self.target.kind == "reranker":
            modes.append(("raise", {"on_error": "raise"}))
        for mode, options in modes:
            mode = f"{flavour}{mode}"
            ok = self.config(**{"timeout": SUCCESS_TIMEOUT, **options})
            with self.memory(ok, f"{mode} mode, success") as memory:
                if memory is not None:
                    before = served.request_count
                    for op in ops:
                        self.call(memory, op, f"{mode} mode, success", "ok")
                    if served.request_count == before:
                        self.fail(f"{mode} mode", "no request reached the fake", "not-exercised")
            with self.memory(self.config(**options), f"{mode} mode, faults") as memory:
                if memory is not None:
                    self.seed(memory, f"{mode} mode, faults")
                    for fault in FAULTS[:-1]:
                        script_fault(served, fault, self.secret)
                        self.faulty(memory, ops, f"{mode} mode, {fault}", mode)
                        served.reset()
            refused = self.config(closed_url(served.base_url), **options)
            with self.memory(refused, f"{mode} mode, refused") as memory:
                if memory is not None:
                    self.seed(memory, f"{mode} mode, refused")
                    self.faulty(memory, ops, f"{mode} mode, refused", mode)

    def url_credentials(self) -> None:
        """The key as the password of the API's URL (``http://drill:KEY@host``): whatever
        the call gives (httpx sends it as basic auth, which the fake refuses), the URL's
        credentials show in no log, error or answer (a config shows its URLs as given: a
        documented limit)."""
        served = self.served
        assert served is not None
        parts = urllib.parse.urlsplit(served.base_url)
        netloc = f"drill:{urllib.parse.quote(self.secret, safe='')}@{parts.netloc}"
        url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        with self.memory(self.config(url), "a URL with credentials", reprs=False) as memory:
            if memory is not None:
                for op in operations(self.target.kind):
                    self.call(memory, op, "a URL with credentials", "any")
                self.report.note("URLs with credentials")

    def seed(self, memory: Any, scenario: str) -> None:
        """Memories for a reranker to rerank (its add does not reach it)."""
        if self.target.kind == "reranker":
            self.call(memory, operations("reranker")[0], scenario, "ok")

    def faulty(self, memory: Any, ops: list[Op], scenario: str, mode: str) -> None:
        self.report.note("faults")
        for op in ops:
            expect = self.expect(op, mode)
            if expect is not None:
                self.call(memory, op, scenario, expect)

    # ------------------------------------------------------------------ the command line

    def invoke(self, command: Any, args: list[str], label: str, code: int) -> None:
        """Run a ``memsift`` command in-process; check its output, error output and any
        exception; it must end with exit status ``code``."""
        from click.testing import CliRunner

        self.report.attempts += 1
        self.report.note("cli runs")
        result = CliRunner().invoke(command, args, env={"COLUMNS": "10000"})
        texts = {"output": result.output}
        with contextlib.suppress(ValueError):  # click < 8.2 mixes stderr into output
            texts["error output"] = result.stderr
        for what, text in texts.items():
            found = find_secret(text, self.secret) or find_secret(
                "".join(text.split()), self.secret
            )
            if found is not None:
                self.fail(label, f"the key shows in the {what}: {found}", "cli")
        error = result.exception
        if error is not None and not isinstance(error, SystemExit):
            self.check(label, exception_leaks(error, self.secret), "cli")
            self.fail(label, f"an undocumented {type(error).__name__}", "undocumented-error")
        elif result.exit_code != code:
            self.fail(label, f"exit status {result.exit_code}, not {code}", "not-exercised")

    def cli(self) -> None:
        """``memsift add`` / ``search`` (plain and ``--json``) with ``--config`` holding the
        key, against a fake answering 401 with the key echoed."""
        from memsift.cli.memory_cmds import add, search

        served = self.served
        assert served is not None
        reranker = self.target.kind == "reranker"
        runs: list[tuple[str, Any, list[str], int]] = []
        modes: list[tuple[str, dict[str, Any]]] = [("fallback", {})]
        if reranker:
            modes.append(("raise", {"on_error": "raise"}))
        for mode, options in modes:
            path = self.root / f"cli-{mode}.json"
            path.write_text(json.dumps(self.config(**{"timeout": SUCCESS_TIMEOUT, **options})))
            where = ["--user-id", USER, "--config", str(path)]
            if reranker:  # memories to rerank, added before the fault
                self.invoke(add, [*TEXTS, *where], f"cli {mode} add", 0)
                code = 0 if mode == "fallback" else 2
                runs += [(f"cli {mode} search", search, [QUERY, *where], code)]
            elif self.target.kind == "llm":
                runs += [("cli add --infer", add, [MESSAGE, "--infer", *where], 2)]
            else:
                runs += [("cli add", add, [*TEXTS, *where], 2)]
                runs += [("cli search", search, [QUERY, *where], 2)]
        script_fault(served, "401-echo", self.secret)
        for label, command, args, code in runs:
            self.invoke(command, args, label, code)
            self.invoke(command, [*args, "--json"], f"{label} --json", code)
        served.reset()
        # configs that are wrong, with the key beside the mistake (or as the mistake)
        bad = {"an unknown option": self.config(no_such_option=self.secret)}
        if self.api_key is not None:
            bad["a wrong-typed key"] = wrap_secret(self.config(), self.secret)
        for what, config in bad.items():
            path = self.root / "cli-bad.json"
            path.write_text(json.dumps(config))
            args = [QUERY, "--user-id", USER, "--config", str(path)]
            self.invoke(search, args, f"cli search, config with {what}", 2)

    def plugins(self) -> None:
        """``memsift plugins`` (and ``--json``, ``--all``) with every key variable set."""
        from memsift.cli.plugins import plugins

        with environment(dict.fromkeys(self.target.key_envs, self.secret)):
            for args in ([], ["--json"], ["--all", "--json"]):
                self.invoke(plugins, args, f"memsift plugins {' '.join(args)}".strip(), 0)

    def logs(self, capture: LogCapture) -> None:
        """No record holds the key; and the SDKs' own DEBUG records were there to look at."""
        self.report.note("log records", len(capture.records))
        sdk = sum(1 for r in capture.records if not r.name.startswith("memsift"))
        self.report.note("SDK and HTTP log records", sdk)
        if not sdk:
            self.fail("logs", "no SDK or HTTP log record was captured", "not-exercised")
        for leak in capture.leaks(self.secret):
            self.fail("logs", f"the key shows in a record of {leak}", "logs")


# --------------------------------------------------------------------------- the drill


def drill_target(target: Target, *, seed: int = 0) -> DrillReport:
    """One target, with its key from the config, from each of its variables, and from each
    of its :func:`key_options`."""
    report = DrillReport(f"secrets {target.name}")
    with tempfile.TemporaryDirectory(prefix="memsift-secrets-drill-") as root:
        for source in ("config", *target.key_envs, *key_options(target)):
            secret = new_secret()
            run = _Run(target, source, secret, Path(root) / slug(source), report)
            report.note("key sources")
            with capture_logs() as capture:
                try:
                    run.drive()
                except Exception as exc:  # the drill itself broke: say so, with no secret
                    run.check("the drill", exception_leaks(exc, secret), "exception")
                    run.fail("the drill", f"stopped by {type(exc).__name__}", "drill-error")
            run.logs(capture)
    return report


def secrets_drill(targets: Iterable[Target], *, seed: int = 0) -> list[DrillReport]:
    """Drill each of ``targets`` (see the module docstring); one report per target.
    ``seed`` is taken for the drills' common signature: this drill makes no random choice
    (only its keys are random, and they change nothing)."""
    return [drill_target(target, seed=seed) for target in targets]


__all__ = ["FAULTS", "Served", "Target", "drill_target", "operations", "secrets_drill"]
