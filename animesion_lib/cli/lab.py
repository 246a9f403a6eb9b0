"""Open JupyterLab on the book's notebooks: bound to 127.0.0.1, behind a token, with the project's kernel.

`make lab` runs this (``python -m animesion_lib.cli.lab``). When a JupyterLab already serves the
same folder, it prints that server's address and exits instead of starting a second one. Nothing
here reaches the network: JupyterLab's update check and news feed are switched off.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import Any

HELP = "open JupyterLab on the notebooks (127.0.0.1, with a token)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--notebooks", type=Path, default=None,
                        help="the folder JupyterLab opens (default: the repository's notebooks/, found from "
                             "the working directory or $ANIMESION_REPO)")
    parser.add_argument("--port", type=int, default=8888, help="first port to try (the next free one is used)")
    parser.add_argument("--no-browser", action="store_true", help="print the address, do not open a browser")


def running_lab(root: Path) -> dict[str, Any] | None:
    """The running Jupyter server (its runtime file's contents) whose root is ``root``, if any.

    ``list_running_servers`` reads the runtime folder's ``jpserver-*.json`` and skips (and
    removes) those whose process has died, so a crashed server does not block a new one.
    """
    from jupyter_server.serverapp import list_running_servers

    root = root.resolve()
    return next((info for info in list_running_servers() if Path(info.get("root_dir", "")).resolve() == root), None)


def lab_url(info: dict[str, Any]) -> str:
    """The address of a running server's JupyterLab, token included."""
    return f"{info['url'].rstrip('/')}/lab?token={info['token']}"


def lab_command(root: Path, port: int, token: str, open_browser: bool = True, port_retries: int = 50) -> list[str]:
    """The command line of a JupyterLab on ``root``, local-only, with ``token``, offline."""
    return [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", f"--ServerApp.port_retries={port_retries}",
            f"--IdentityProvider.token={token}", f"--ServerApp.open_browser={open_browser}",
            "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
            "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
            f"--ServerApp.allow_root={os.geteuid() == 0}"]  # CI containers run as root


def lab_environment() -> dict[str, str]:
    """This environment, with this virtual environment's kernels found first (before a user's own ``python3``)."""
    env = dict(os.environ)
    ours = str(Path(sys.prefix) / "share" / "jupyter")
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (ours, env.get("JUPYTER_PATH")) if p)
    return env


def free_port(first: int) -> int:
    """The first port from ``first`` on that nothing listens on at 127.0.0.1."""
    import socket

    for port in range(first, first + 50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise OSError(f"no free port in {first}..{first + 49} on 127.0.0.1")


def run(args: argparse.Namespace) -> int:
    if args.notebooks is None:
        from animesion_book.repository import find_repository

        args.notebooks = find_repository() / "notebooks"
    root = args.notebooks.resolve()
    if not root.is_dir():
        print(f"{root}: no such folder", file=sys.stderr)
        return 2
    info = running_lab(root)
    if info is not None:
        print(f"JupyterLab is already running on {root} (pid {info['pid']}): {lab_url(info)}")
        print(f"stop it with: kill {info['pid']}   (or File > Shut Down in JupyterLab)")
        return 0
    port, token = free_port(args.port), secrets.token_hex(24)
    command = lab_command(root, port, token, open_browser=not args.no_browser, port_retries=0)
    # JupyterLab's own log hides the token: say the whole address once
    print(f"JupyterLab on {root}: http://127.0.0.1:{port}/lab?token={token}")
    sys.stdout.flush()
    os.execve(command[0], command, lab_environment())  # JupyterLab takes this process over: Ctrl-C stops it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m animesion_lib.cli.lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
