"""Every `python -m vvc_lightning ...` line of the README parses with the CLI's own parser (options that
exist, values of the right type), so a renamed or removed option cannot leave a README example that fails."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from vvc_lightning.cli.main import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"
PREFIX = ["python", "-m", "vvc_lightning"]


def _commands() -> list[str]:
    """The CLI calls in the README's bash blocks (a line's `&&` parts), shell variables filled in."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    found = []
    for line in "\n".join(blocks).splitlines():
        for part in line.split("&&"):
            part = re.sub(r"\$\{?(\w+)\}?", lambda m: "1" if "TASK" in m.group(1) else m.group(1).lower(),
                          part)
            words = shlex.split(part, comments=True)
            if words[:3] == PREFIX:
                found.append(shlex.join(words[3:]))
    return found


COMMANDS = _commands()


def test_readme_has_every_command() -> None:
    names = {c.split()[0] for c in COMMANDS}
    assert {"fit", "validate", "test", "compress", "decompress", "evaluate", "models", "export", "backbones",
            "shard"} <= names, names


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_parses(command: str) -> None:
    args, unknown = build_parser().parse_known_args(shlex.split(command))
    overrides = [u for u in unknown if "=" in u and not u.startswith("-")]
    assert unknown == overrides and (not overrides or isinstance(getattr(args, "overrides", None), list)), (
        command, unknown)
