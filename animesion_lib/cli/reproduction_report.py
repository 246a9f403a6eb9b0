"""Compare a fresh run's results records with the committed ones, number by number.

After `make book` has rewritten results/<profile>/ in this checkout, the committed records are
those of a git revision (HEAD by default), and the fresh ones are the working tree's:

  animesion reproduction-report --profile cpu
  animesion reproduction-report --committed other_clone/results --fresh results

Each number is read against its own seed noise (see animesion_lib.reproduction); the report lists
the numbers that moved beyond it and every verdict that changed. Exit status 1 when any did.
"""

from __future__ import annotations

import argparse

HELP = "compare fresh results records with the committed ones (seed-noise tolerances)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="cpu", help="which results/<profile>/ to compare")
    parser.add_argument("--fresh", default="results", help="results folder of the fresh run")
    parser.add_argument("--committed", default=None,
                        help="results folder of the reference run (default: --revision's results/)")
    parser.add_argument("--revision", default="HEAD", help="git revision whose results/ is the reference")
    parser.add_argument("--output", default=None, help="also write the Markdown report to this file")


def _records_at_revision(revision: str, profile: str, into: str) -> str:
    """Extract results/<profile>/ of a git revision into a folder; return the results root."""
    import io
    import subprocess
    import tarfile

    from animesion_lib.errors import AnimesionError

    try:
        archive = subprocess.run(["git", "archive", revision, f"results/{profile}"],
                                 capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", b"") or b""
        raise AnimesionError(f"cannot read results/{profile} at git revision {revision!r}: "
                             f"{detail.decode(errors='replace').strip() or err}") from err
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return f"{into}/results"


def run(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from animesion_lib.reproduction import reproduction_report

    with tempfile.TemporaryDirectory() as tmp:
        committed = args.committed or _records_at_revision(args.revision, args.profile, tmp)
        found = reproduction_report(committed, args.fresh, args.profile)
    print(found.markdown())
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(found.markdown() + "\n")
    return 0 if found.reproduced else 1
