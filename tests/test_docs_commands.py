"""Every shell line of the README and of the docs/ pages runs (issue 25, 12).

The ```bash blocks of README.md, then of docs/*.md in name order, run line by line, in order, in a
temporary folder per page, so a later line uses what an earlier one made. The
folder holds links to the repository's examples/ and benchmarks/, which lines name; LNTUNE_DATA_DIR names the
shared data folder and the Hub is offline, as on a machine without network. By one rule, stated here and in
docs/reliability.md, the test changes lines only by appending size limits:

  - `lntune train` and `lntune analyse curve` lines get `--train-limit 32 --eval-limit 8 --epochs 1
    --max-steps 2` (the later flag wins, so a line's own larger budget shrinks to this one);
  - a line ending `> FILE` writes the command's output to FILE, and `NAME=value` words before the command set
    its environment, as the shell would;
  - a `lntune serve` line runs in the background until its block ends, and the next line starts once it
    answers /health.

A line is not run only when its comment marks it `(online)` (it needs the network), `(GPU)`, or `(CI)` (the
set-up and test lines, which .ci/run runs on every clean clone). No line is skipped for taking long or for
failing: each must exit 0.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import DATA_DIR

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXEMPT = re.compile(r"#.*\((online|GPU|CI)\b")
LIMITS = ["--train-limit", "32", "--eval-limit", "8", "--epochs", "1", "--max-steps", "2"]
LIMITED = (("lntune", "train"), ("lntune", "analyse", "curve"))
TIMEOUT_S = 900


def blocks(page: Path) -> list[list[str]]:
    """The page's ```bash blocks, each as its logical lines (continuations joined, comments kept)."""
    out = []
    for indent, body in re.findall(r"^([ \t]*)```bash\n(.*?)^[ \t]*```", page.read_text(), re.M | re.S):
        lines, joined = [], ""  # a block inside a list item is indented: its lines lose that indent
        for raw in (line.removeprefix(indent) for line in body.splitlines()):
            joined += raw[:-1] + " " if raw.endswith("\\") else raw
            if raw.endswith("\\") or _open_quote(joined):
                joined += "" if raw.endswith("\\") else "\n"
                continue
            if joined.strip() and not joined.lstrip().startswith("#"):
                lines.append(joined)
            joined = ""
        out.append(lines)
    return out


def _open_quote(text: str) -> bool:
    """Whether a quoted string (a curl body over several lines) is still open at the end of `text`."""
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return True
    return False


def command(line: str) -> list[str]:
    """The line as argv (comments dropped), with the size rule applied."""
    argv = shlex.split(line, comments=True)
    bare = argv[len(assignments(argv)):]
    if any(tuple(bare[: len(prefix)]) == prefix for prefix in LIMITED):
        argv += LIMITS
    return argv


def assignments(argv: list[str]) -> dict[str, str]:
    """The `NAME=value` words a line starts with: the shell's environment for that one command."""
    out = {}
    for word in argv:
        if not re.match(r"[A-Za-z_]\w*=", word):
            break
        name, value = word.split("=", 1)
        out[name] = value
    return out


def redirect(argv: list[str]) -> tuple[list[str], str | None]:
    """A line ending `> FILE` (the one shell form the pages use) runs without it; its output goes to FILE."""
    if len(argv) > 2 and argv[-2] == ">":
        return argv[:-2], argv[-1]
    return argv, None


@pytest.fixture
def folder(tmp_path) -> Path:
    """Each page in its own folder: a page's lines make what its later lines use."""
    for name in ("examples", "benchmarks"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def env(home: Path) -> dict:
    bin_dir = str(Path(sys.executable).parent)  # the venv's lntune
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "LNTUNE_DATA_DIR": str(DATA_DIR),
            "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "120", "LNTUNE_CACHE": str(home / "cache"),
            "MPLBACKEND": "Agg"}


def wait_for(port: str, server: subprocess.Popen, line: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"{line!r} exited with {server.returncode}:\n{server.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise AssertionError(f"{line!r} did not answer /health within 300 s")


def run_block(lines: list[str], cwd: Path, where: str) -> list[str]:
    """Run the block's lines; returns those exempt by their comment."""
    exempt, servers = [], []
    try:
        for line in lines:
            if EXEMPT.search(line):
                exempt.append(line)
                continue
            argv = command(line)
            if argv[:2] == ["lntune", "serve"]:
                server = subprocess.Popen(argv, cwd=cwd, env=env(cwd), stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True)
                servers.append(server)
                wait_for(argv[argv.index("--port") + 1], server, line)
                continue
            argv, into = redirect(argv)
            extra = assignments(argv)
            argv = argv[len(extra):]
            r = subprocess.run(argv, cwd=cwd, env={**env(cwd), **extra}, capture_output=True, text=True,
                               timeout=TIMEOUT_S)
            if into and r.returncode == 0:
                (cwd / into).write_text(r.stdout)
            assert r.returncode == 0, f"{where}: {line!r} (run as {shlex.join(argv)}) exited {r.returncode}:\n" \
                                      f"{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)
    return exempt


def test_blocks_are_read_whole():
    """The reader joins continuations and multi-line quotes, and keeps every other line."""
    page = ROOT / "README.md"
    lines = [line for block in blocks(page) for line in block]
    curl = next(line for line in lines if line.startswith("curl") and "/predict" in line)
    assert command(curl)[-1].endswith("}]}") and len(command(curl)) == 7
    assert command("lntune train --epochs 20  # a comment")[-8:] == LIMITS
    assert command("lntune ask runs/x 'a # b'") == ["lntune", "ask", "runs/x", "a # b"]
    training = [line for block in blocks(ROOT / "docs" / "training.md") for line in block]
    assert "lntune schema > lntune-train.schema.json" in training  # from a block indented inside a list item
    assert redirect(command("lntune schema sweep > s.json")) == (["lntune", "schema", "sweep"], "s.json")
    argv = command("A=1 B=x=y lntune train")
    assert assignments(argv) == {"A": "1", "B": "x=y"} and argv[-8:] == LIMITS


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_line_runs(page, folder):
    assert DATA_DIR.is_dir(), f"the shared data folder is expected at {DATA_DIR}"
    exempt = []
    for k, lines in enumerate(blocks(page)):
        exempt += run_block(lines, folder, f"{page.name}, block {k + 1}")
    for line in exempt:  # what is not run says why, in the page itself
        assert EXEMPT.search(line), line
