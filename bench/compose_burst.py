"""``burst.py`` against the compose stack's API container: the stack brought up as the compose
test does (tests/deploy/compose_stack.py: a private dockerd with no bridge, the base images,
the project's images, docker-compose.yml's loopback variant, every listener on 127.0.0.x), then
``burst.py --url <the API> --token <its token>`` (each round: a 9-trial digits study through
the API to its end, then 50 new clients at once), then ``down -v`` and the dockerd stopped (by
its pid, when this run started it).

    .venv/bin/python bench/compose_burst.py [--rounds 3] [burst.py's options ...]

Root and Debian's docker.io and docker-compose are needed (``scripts/test_deps.sh`` installs
them); the images are built where missing (minutes, cold) and reused where present. Traffic:
loopback only, apart from the builds' (Debian's archive, the package index). The machine's load
average is printed before and after the bursts (burst.py prints it per round).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "deploy"))

from compose_stack import ComposeStack, PrivateDockerd, engine_unavailable  # noqa: E402


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--keep", action="store_true", help="leave the stack and the dockerd running"
    )
    args, burst_args = parser.parse_known_args()
    why = engine_unavailable()
    if why:
        print(f"compose_burst: {why}", file=sys.stderr)
        return 69
    workdir = ROOT / "bench" / "results" / "compose-burst"
    workdir.mkdir(parents=True, exist_ok=True)
    dockerd = PrivateDockerd()
    dockerd.start()
    stack = None
    try:
        # burst.py's study is on scikit-learn's digits: no Fashion-MNIST for the stack
        with tempfile.TemporaryDirectory() as no_data:
            stack = ComposeStack(workdir, dockerd.host, Path(no_data))
        stack.compose("down", "--volumes", "--timeout", "10", check=False)  # a stale run's
        print(stack.base_images(), file=sys.stderr)
        stack.build()
        stack.up()
        print(f"compose_burst: stack healthy, timings (s) {stack.timings}; load {_load()}")
        started = time.monotonic()
        command = [sys.executable, str(ROOT / "bench" / "burst.py"), "--url", stack.api_url]
        command += ["--token", stack.api_token, "--rounds", str(args.rounds), *burst_args]
        burst = subprocess.run(command, cwd=ROOT, timeout=3600)
        stack.check_network()
        print(
            f"compose_burst: burst.py exited {burst.returncode} after "
            f"{time.monotonic() - started:.0f} s; load {_load()}; connections outside "
            f"loopback: {stack.outside or 'none'}"
        )
        return burst.returncode or (1 if stack.outside else 0)
    finally:
        if not args.keep:
            try:
                if stack is not None:
                    stack.down(volumes=True)
            finally:
                dockerd.stop()


if __name__ == "__main__":
    raise SystemExit(main())
