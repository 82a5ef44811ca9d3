"""``memsift drill`` prints its table and exits 0 only when every drill held."""

from __future__ import annotations

from click.testing import CliRunner

from memsift.cli.drill import drill


def test_drill_prints_a_table_of_the_chosen_drills() -> None:
    args = ["--only", "hostile", "--only", "tenants", "--only", "concurrency", "--only", "migrate"]
    result = CliRunner().invoke(drill, [*args, "--cases", "60", "--ops", "60", "--kills", "10"])
    assert result.exit_code == 0, result.output
    for word in ("drill", "attempts", "failures", "lost", "hostile input", "tenant isolation"):
        assert word in result.output
    assert "8 threads, one Memory" in result.output and "killed migrate" in result.output


def test_the_crash_drill_holds() -> None:
    result = CliRunner().invoke(drill, ["--only", "crash", "--kills", "3", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "crash at any point" in result.output
    assert "history ahead of store" not in result.output


def test_sizes_must_be_positive() -> None:
    result = CliRunner().invoke(drill, ["--kills", "0"])
    assert result.exit_code == 2
    assert "--kills" in result.output


def test_the_environment_and_processes_drills_print_their_rows() -> None:
    args = ["--only", "environment", "--only", "processes", "--kills", "10", "--ops", "40"]
    result = CliRunner().invoke(drill, args)
    assert result.exit_code == 0, result.output
    assert "hostile" in result.output and "environment" in result.output
    assert "3 processes, one store path" in result.output


def test_an_unknown_store_is_a_usage_error() -> None:
    result = CliRunner().invoke(drill, ["--only", "concurrency", "--store", "nosuchstore"])
    assert result.exit_code == 2
    assert "--store" in result.output and "nosuchstore" in result.output
