"""``interlink patterns advise``: collect the answers (options, or questions on a terminal), then print the
advice of :func:`interlink.cli.pattern_advice.advise` as text or JSON."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from interlink.cli.pattern_advice import (
    HIGH_VOLUME_RECORDS,
    PATTERNS,
    Advice,
    Answers,
    Direction,
    Kind,
    Timing,
    advise,
    parse_volume,
    parse_yes_no,
)

patterns_app = typer.Typer(help="The six integration patterns: which one fits a scenario, and how Interlink runs it.",
                           no_args_is_help=True)

QUESTIONS = {
    "direction": "Which way? out = from the org to another system, in = from another system into the org",
    "kind": "What is integrated? process = a business process spans systems, data = records kept in step, "
            "virtual = work on remote data without copying it",
    "timing": "Must the caller wait for the result? sync = yes, async = no",
    "volume": f"How many records per run? low, high, or a number (more than {HIGH_VOLUME_RECORDS:,} is high)",
    "remote_master": "Is the other system the master (system of record) of the data?",
    "ui": "Must users see the changes live, without refreshing?",
}
FLAGS = {"direction": "--direction", "kind": "--type", "timing": "--timing", "volume": "--volume",
         "remote_master": "--remote-master", "ui": "--ui"}


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _choice(values: list[str]) -> Any:
    def convert(text: str) -> str:
        value = text.strip().lower()
        if value not in values:
            raise typer.BadParameter(f"answer {' or '.join(values)}")
        return value

    return convert


def _checked(parse: Any) -> Any:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return convert


def _validated(parse: Any) -> Any:
    """A prompt's value check that keeps the text as typed (it is parsed once, with the options)."""
    check = _checked(parse)

    def convert(text: str) -> str:
        check(text)
        return text

    return convert


def _validate_volume(value: str | None) -> str | None:
    if value is not None:
        _checked(parse_volume)(value)
    return value


def _validate_yes_no(value: str | None) -> str | None:
    if value is not None:
        _checked(parse_yes_no)(value)
    return value


def _ask(name: str) -> Any:
    if name in ("remote_master", "ui"):
        return typer.confirm(QUESTIONS[name], default=None, err=True)
    if name == "volume":
        return typer.prompt(QUESTIONS[name], value_proc=_validated(parse_volume), err=True)
    values = {"direction": ["out", "in"], "kind": ["process", "data", "virtual"], "timing": ["sync", "async"]}[name]
    return typer.prompt(f"{QUESTIONS[name]} [{'/'.join(values)}]", value_proc=_choice(values), err=True)


@patterns_app.command("advise")
def advise_command(
    direction: Annotated[Direction | None, typer.Option(
        case_sensitive=False, help="out: from the org to another system; in: from another system into the org.")]
    = None,
    kind: Annotated[Kind | None, typer.Option(
        "--type", case_sensitive=False,
        help="process (a process spans systems), data (records kept in step) or virtual (remote data, not copied).")]
    = None,
    timing: Annotated[Timing | None, typer.Option(
        case_sensitive=False, help="sync: the caller waits for the result; async: it does not.")] = None,
    volume: Annotated[str | None, typer.Option(
        callback=_validate_volume, help=f"low, high, or a number of records (more than {HIGH_VOLUME_RECORDS} is "
                                        "high).")] = None,
    remote_master: Annotated[str | None, typer.Option(
        "--remote-master", callback=_validate_yes_no, help="yes/no: the other system is the master of the data.")]
    = None,
    ui: Annotated[str | None, typer.Option(
        "--ui", callback=_validate_yes_no, help="yes/no: users must see changes live, without refreshing.")] = None,
    no_input: Annotated[bool, typer.Option("--no-input", help="Never ask: a missing answer is an error (exit 2).")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the advice as JSON.")] = False,
) -> None:
    """Recommend an integration pattern and the Interlink features that run it; asks for missing answers."""
    given: dict[str, Any] = {
        "direction": direction.value if direction else None, "kind": kind.value if kind else None,
        "timing": timing.value if timing else None, "volume": volume,
        "remote_master": parse_yes_no(remote_master) if remote_master is not None else None,
        "ui": parse_yes_no(ui) if ui is not None else None,
    }
    missing = [name for name, value in given.items() if value is None]
    if missing and (no_input or not _stdin_is_terminal()):
        flags = ", ".join(FLAGS[name] for name in missing)
        typer.echo(f"error: missing answers: {flags} (give them as options, or run in a terminal without "
                   "--no-input to be asked)", err=True)
        raise typer.Exit(2)
    for name in missing:
        given[name] = _ask(name)
    level, records = parse_volume(str(given["volume"]))
    answers = Answers(given["direction"], given["kind"], given["timing"], level, bool(given["remote_master"]),
                      bool(given["ui"]), records)
    advice = advise(answers)
    if as_json:
        typer.echo(json.dumps(advice.to_json(), indent=2, ensure_ascii=False))
    else:
        typer.echo(render(advice))


def render(advice: Advice) -> str:
    """The advice as text for a terminal."""
    data = advice.to_json()
    solution = data["solution"]

    def block(label: str, items: list[str]) -> list[str]:
        return [f"{label:<13}{'- ' if len(items) > 1 else ''}{items[0]}",
                *(f"{'':<13}- {item}" for item in items[1:])] if items else []

    lines = [f"{'Pattern':<13}{advice.name} ({solution['fit']} fit)",
             f"{'Interlink':<13}{solution['summary']}"]
    lines += block("Uses", solution["uses"])
    lines += block("Why", data["reasons"])
    lines.append(f"{'Keys':<13}{data['keys']}")
    lines += block("Alternatives", [
        ("" if alt["pattern"] == advice.pattern else f"{PATTERNS[alt['pattern']][0]}: ")
        + f"{alt['solution']} ({alt['fit']}): {alt['why']}" for alt in data["alternatives"]])
    lines.append(f"{'Example':<13}{data['example']}")
    lines.append(f"{'Docs':<13}{', '.join(data['docs'])}")
    lines += block("Notes", data["notes"])
    return "\n".join(lines)
