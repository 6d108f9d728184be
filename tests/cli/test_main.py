"""The command line: sub-commands exist, user errors are one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vvc_lightning.cli.main import build_parser, main


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vvc_lightning", *args], capture_output=True, text=True, **kw
    )


def test_every_documented_command_is_available():
    commands = build_parser()._subparsers._group_actions[0].choices
    for name in ("fit", "validate", "test", "backbones", "compress", "decompress", "evaluate", "shard"):
        assert name in commands, name


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "--config", "quickstart_scratch.yaml", "model.nope=1"], "unknown config key 'model.nope'"),
        (["fit", "--config", "missing.yaml"], "config 'missing.yaml' not found"),
        (["fit", "--config", "quickstart_scratch.yaml", "model.gop=10"], "model.gop must be 1 + 4k"),
        (["fit", "--config", "quickstart_scratch.yaml", "model.backbone.name=vq"], "unknown backbone 'vq'"),
        (["test", "--ckpt", "no/such.ckpt"], "checkpoint 'no/such.ckpt' does not exist"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(args, message):
    proc = run_cli(*args)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_foreign_file_as_checkpoint_is_rejected(tmp_path, capsys):
    fake = tmp_path / "x.ckpt"
    fake.write_bytes(b"not a checkpoint")
    assert main(["test", "--ckpt", str(fake)]) == 2
    assert "is a text file, not a checkpoint" in capsys.readouterr().err


def test_backbones_lists_builtins_with_source_and_size():
    proc = run_cli("backbones", "--size", "64x64")
    assert proc.returncode == 0, proc.stderr
    rows = {ln.split()[0]: ln for ln in proc.stdout.splitlines()[1:]}
    assert "built-in" in rows["cv_vae"] and "built-in" in rows["lean_vae"]
    assert rows["cv_vae"].split()[-1][-1] in "KMGT" and rows["lean_vae"].split()[-1][-1] in "KMGT"


@pytest.mark.parametrize(("command", "fast"),
                         [(["models"], True), (["fit", "--config", "missing.yaml"], False)])
def test_leave_runs_atexit_and_keeps_the_exit_code(tmp_path, command, fast):
    """A FAST_EXIT command leaves without the interpreter's teardown but after the atexit handlers and with
    its own exit code and output; another command exits normally (its code too)."""
    mark = tmp_path / "atexit.txt"
    code = (f"import atexit, sys\n"
            f"atexit.register(lambda: open({str(mark)!r}, 'w').write('ran'))\n"
            f"sys.argv = ['vvc-lightning', *{command!r}]\n"
            f"from vvc_lightning.cli import main as m\n"
            f"try:\n    m.run()\nfinally:\n"
            f"    fast = m._RAN and m._RAN[0] in m.FAST_EXIT\n"
            f"    print('normal' if fast else 'teardown', file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert mark.read_text() == "ran"
    assert proc.returncode == (0 if fast else 2), proc.stderr
    if fast:
        assert "vvc-lean-vr" in proc.stdout and "normal" not in proc.stderr  # no finally: os._exit
    else:
        assert "not found" in proc.stderr and "teardown" in proc.stderr
