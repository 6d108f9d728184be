import os
import signal


def _interrupted(signum: int, frame: object) -> None:
    os.write(2, b"interrupted\n")
    os._exit(130)


signal.signal(signal.SIGINT, _interrupted)  # Ctrl-C while starting: nothing is written yet, leave at once

from vvc_lightning.cli.main import main  # noqa: E402

code = main()
signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command is done: Ctrl-C during shutdown changes nothing
raise SystemExit(code)
