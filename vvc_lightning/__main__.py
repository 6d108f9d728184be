import os
import signal


def _interrupted(signum: int, frame: object) -> None:
    os.write(2, b"interrupted\n")
    os._exit(130)


signal.signal(signal.SIGINT, _interrupted)  # Ctrl-C while starting: nothing is written yet, leave at once

from vvc_lightning.cli.main import run  # noqa: E402

run()  # main(), then leave(): Ctrl-C during shutdown changes nothing
