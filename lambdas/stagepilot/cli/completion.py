"""``stagepilot completion bash|zsh|fish``: the shell completion script, from the parser the CLI runs.

bash and zsh come from shtab (imported by this command only); fish from the parser here (shtab has no
fish): the commands, their subcommands, each one's options and the choices an option takes.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from stagepilot.cli.output import Output

SHELLS: Final = ("bash", "zsh", "fish")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    command = commands.add_parser(
        "completion",
        parents=[common],
        help="the shell completion script (bash, zsh or fish)",
        description="Print the completion script of your shell for stagepilot: every command, subcommand and "
        "option, and file names where a command takes a file. Load it as the examples show.",
    )
    command.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    command.set_defaults(handler=cmd_completion)


def cmd_completion(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.cli.main import PROG, build_parser

    parser = build_parser()
    if args.shell == "fish":
        script = "\n".join(fish_script(parser, PROG))
    else:
        import shtab

        script = shtab.complete(parser, shell=args.shell)
    out.stdout.write(script.rstrip("\n") + "\n")
    return 0


def fish_script(parser: argparse.ArgumentParser, prog: str) -> Iterator[str]:
    yield f"# fish completion for {prog}: {prog} completion fish > ~/.config/fish/completions/{prog}.fish"
    yield f"complete -c {prog} -f"
    yield from _fish_options(parser, prog, condition="__fish_use_subcommand")
    yield from _fish_commands(parser, prog, path=[])


def _fish_commands(parser: argparse.ArgumentParser, prog: str, path: list[str]) -> Iterator[str]:
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
        names = list(action.choices)
        where = _condition(path, names)
        for name in names:
            yield f"complete -c {prog} -n {_quote(where)} -a {name} -d {_quote(helps.get(name, ''))}"
        for name, sub in action.choices.items():
            inside = [*path, name]
            subs = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
            if not subs:
                yield from _fish_options(sub, prog, condition=_seen(inside))
            yield from _fish_commands(sub, prog, inside)


def _fish_options(parser: argparse.ArgumentParser, prog: str, *, condition: str) -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        longs = [o[2:] for o in action.option_strings if o.startswith("--")]
        shorts = [o[1:] for o in action.option_strings if len(o) == 2 and o[0] == "-"]
        if not longs and not shorts:
            if action.choices:  # a positional with choices (completion's SHELL)
                words = " ".join(str(c) for c in action.choices)
                yield f"complete -c {prog} -n {_quote(condition)} -a {_quote(words)}"
            elif action.type is not None and action.type is Path:
                yield f"complete -c {prog} -n {_quote(condition)} -F"
            continue
        flags = " ".join([*(f"-l {name}" for name in longs), *(f"-s {name}" for name in shorts)])
        takes = action.nargs != 0
        extra = ""
        if takes and action.choices:
            extra = f" -x -a {_quote(' '.join(str(c) for c in action.choices))}"
        elif takes and action.type is Path:
            extra = " -r -F"
        elif takes:
            extra = " -x"
        yield f"complete -c {prog} -n {_quote(condition)} {flags}{extra} -d {_quote(action.help or '')}"


def _condition(path: list[str], names: list[str]) -> str:
    if not path:
        return "__fish_use_subcommand"
    return f"{_seen(path)}; and not __fish_seen_subcommand_from {' '.join(names)}"


def _seen(path: list[str]) -> str:
    return "; and ".join(f"__fish_seen_subcommand_from {name}" for name in path)


def _quote(text: str) -> str:
    text = " ".join(str(text).split())[:120]
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
