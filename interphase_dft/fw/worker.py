"""Worker process: FireWorks' rocket launcher on an interphase LaunchPad.

``python -m interphase_dft.fw.worker rapidfire|singleshot [--launchpad FILE] [--fw_id N]``

Like FireWorks' ``rlaunch``, but the embedded store is opened through
:class:`interphase_dft.fw.launchpad.EmbeddedLaunchPad` (locked transactions), so several
workers and Slurm jobs can share it. Used by ``interphase-dft run`` and by the Slurm job
script written by ``interphase-dft qlaunch``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from interphase_dft.errors import InterphaseError
from interphase_dft.fw.launchpad import open_launchpad, redact, resolve_launchpad


def _stop_now(signum: int, frame: object) -> None:
    sys.stderr.write(f"worker: signal {signum}, stopping; rerun with `interphase-dft rerun "
                     "--lost` (the calculation resumes from its checkpoint)\n")
    sys.stderr.flush()
    os._exit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interphase_dft.fw.worker")
    parser.add_argument("mode", choices=["rapidfire", "singleshot"])
    parser.add_argument("--launchpad", default=None)
    parser.add_argument("--fw_id", type=int, default=None)
    parser.add_argument("--nlaunches", type=int, default=0, help="0 = until nothing is left")
    parser.add_argument("--sleep", type=int, default=2,
                        help="seconds between checks while other workers hold the next step")
    args = parser.parse_args(argv)
    # scancel (SIGTERM) or the pre-walltime signal (--signal=B:USR1@300): stop at once. The
    # launch stays RUNNING (a SystemExit would be recorded as FIZZLED); `interphase-dft rerun
    # --lost` requeues it and the calculation resumes from its checkpoint (written atomically).
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, _stop_now)
    try:
        config = resolve_launchpad(args.launchpad)
        lp = open_launchpad(config)
        from fireworks import FWorker
        from fireworks.core.rocket_launcher import launch_rocket, rapidfire

        if args.mode == "singleshot":
            launch_rocket(lp, FWorker(), fw_id=args.fw_id, strm_lvl="INFO")
        else:
            rapidfire(lp, FWorker(), nlaunches=args.nlaunches, sleep_time=args.sleep,
                      strm_lvl="INFO")
    except InterphaseError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
