"""README's code blocks, replayed in a new directory the way a new user follows them.

README.md is written to this convention, which :func:`steps` enforces:

- A block whose language is ``sh`` holds commands, one a line, typed in order into a
  terminal whose virtual environment is active. ``#`` starts a comment. ``cd DIR`` changes the
  directory of what follows, commands and files alike.
- ``pip install "floorchannels[extras]"`` installs the wheel under test, with those extras,
  instead of the release on PyPI (its other requirements still come from the index).
- A command that serves (``daphne ...`` or ``python manage.py runserver ...``) does not
  return, so it is not run in turn: it is collected, and the test starts it as a server,
  with a free port in place of the one README shows (``-p 8000``, ``runserver 8000``). README
  must show a port, so that the substitution is one a user makes too.
- Any other block is a file. Its first line is a comment naming the file (relative to the
  current directory) and what to do with it: ``# mysite/settings.py: add at the end``,
  ``{# hello/templates/hello/index.html: new file #}`` or ``<!-- path: replace the file -->``.
  ``new file`` must not exist yet (its folders are created), ``replace the file`` and
  ``add at the end`` must exist. The block's text, first line included, is what is written.
- A block that follows neither form is an error: a step the test would skip is a step a user
  could miss.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^(?P<fence>```+)(?P<info>[^`]*)$")
COMMAND_LANGUAGES = {"sh", "shell", "bash", "console"}
FILE_HEADER = re.compile(
    r"^(?:#|\{#|<!--)\s*(?P<path>[\w./-]+)\s*:\s*(?P<action>new file|replace the file|add at the end)\s*(?:#\}|-->)?\s*$"
)
# `floorchannels` or `floorchannels[a,b]` as a pip requirement.
REQUIREMENT = re.compile(r"^floorchannels(?P<extras>\[[\w,\s-]+\])?$")


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int  # 1-based line of the opening fence, for error messages


@dataclass(frozen=True)
class Command:
    line: str
    source: int


@dataclass(frozen=True)
class FileEdit:
    path: str
    action: str
    text: str
    source: int


Step = Command | FileEdit


def section(markdown: str, start: str, end: str | None = None) -> tuple[str, int]:
    """The text after the line ``start`` up to the line ``end`` (or the next ``## `` heading).

    Returns the text and the line number it starts at, so blocks keep README's line numbers.
    """
    lines = markdown.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == start]
    assert len(starts) == 1, f"README needs exactly one line {start!r}"
    first = starts[0] + 1
    for last in range(first, len(lines)):
        line = lines[last].strip()
        if (end is not None and line == end) or (end is None and line.startswith("## ")):
            break
    else:
        assert end is None, f"README has no line {end!r} after {start!r}"
        last = len(lines)
    return "\n".join(lines[first:last]), first + 1


def fenced_blocks(markdown: str, first_line: int = 1) -> list[Block]:
    """The fenced code blocks of ``markdown``, in order."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence = opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != fence:
            body.append(lines[j])
            j += 1
        assert j < len(lines), f"README line {first_line + i}: code block never closed"
        language = opening["info"].strip().split(" ")[0]
        blocks.append(Block(language, "\n".join(body) + "\n", first_line + i))
        i = j + 1
    return blocks


def steps(blocks: list[Block]) -> list[Step]:
    """Commands and file edits, in README's order (see the module's docstring)."""
    result: list[Step] = []
    for block in blocks:
        if block.language in COMMAND_LANGUAGES:
            for offset, line in enumerate(block.text.splitlines(), start=1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                assert not line.endswith("\\"), f"README line {block.line + offset}: one command a line"
                result.append(Command(line, block.line + offset))
            continue
        header = FILE_HEADER.match(block.text.splitlines()[0] if block.text.strip() else "")
        assert header, (
            f"README line {block.line}: a ```{block.language} block must start with a comment naming "
            "its file and 'new file', 'replace the file' or 'add at the end'"
        )
        result.append(FileEdit(header["path"], header["action"], block.text, block.line))
    return result


def program(command: str) -> list[str]:
    """The command's words after any leading ``NAME=value`` assignments."""
    words = shlex.split(command)
    while words and re.match(r"^\w+=", words[0]):
        words.pop(0)
    return words


def serves(command: str) -> bool:
    """True for ``daphne ...`` and ``python manage.py runserver ...``: commands that do not return."""
    words = program(command)
    if words and Path(words[0]).name == "daphne":
        return True
    return "manage.py" in words and words[words.index("manage.py") + 1 :][:1] == ["runserver"]


def with_port(command: str, port: int) -> str:
    """``command`` serving on ``port`` instead of the port README shows."""
    words = shlex.split(command)
    if "runserver" in words:
        index = words.index("runserver") + 1
        assert index < len(words) and re.fullmatch(r"(?:[\w.]+:)?\d+", words[index]), (
            f"README's {command!r} shows no port"
        )
        host = words[index].rpartition(":")[0]
        words[index] = f"{host}:{port}" if host else str(port)
    else:
        flags = [i for i, word in enumerate(words) if word in ("-p", "--port")]
        assert flags and flags[0] + 1 < len(words), f"README's {command!r} shows no port (-p)"
        words[flags[0] + 1] = str(port)
    return shlex.join(words)


def with_wheel(command: str, wheel: Path) -> str:
    """A ``pip install`` of floorchannels from PyPI turned into one of ``wheel``."""
    words = program(command)
    if words[:2] != ["pip", "install"] and words[1:4] != ["-m", "pip", "install"]:
        return command
    out = shlex.split(command)
    for i, word in enumerate(out):
        match = REQUIREMENT.match(word)
        if match:
            out[i] = f"{wheel}{(match['extras'] or '').replace(' ', '')}"
    return shlex.join(out)


class Replay:
    """Runs steps in a directory with a virtual environment active, as a terminal would."""

    def __init__(self, cwd: Path, env: dict[str, str], wheel: Path) -> None:
        self.cwd = cwd
        self.env = env
        self.wheel = wheel
        self.servers: list[str] = []  # every serving command met so far

    def apply(self, todo: list[Step]) -> list[str]:
        """Run commands and edit files; returns the serving commands met, in order."""
        met: list[str] = []
        for step in todo:
            if isinstance(step, FileEdit):
                self.edit(step)
            elif serves(step.line):
                met.append(step.line)
            else:
                self.run(step)
        self.servers.extend(met)
        return met

    def run(self, step: Command) -> None:
        words = shlex.split(step.line)
        if words[0] == "cd":
            assert len(words) == 2, f"README line {step.source}: cd takes one directory"
            target = (self.cwd / words[1]).resolve()
            assert target.is_dir(), f"README line {step.source}: {target} is not a directory"
            self.cwd = target
            return
        command = with_wheel(step.line, self.wheel)
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, (
            f"README line {step.source}: {command!r} exited with {result.returncode}\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )

    def edit(self, step: FileEdit) -> None:
        path = self.cwd / step.path
        where = f"README line {step.source}: {step.path}"
        if step.action == "new file":
            assert not path.exists(), f"{where} is a 'new file' but exists already"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(step.text)
        elif step.action == "replace the file":
            assert path.is_file(), f"{where} is to be replaced but does not exist"
            path.write_text(step.text)
        else:
            assert path.is_file(), f"{where} is to be added to but does not exist"
            current = path.read_text()
            path.write_text(current + ("" if current.endswith("\n") else "\n") + "\n" + step.text)
