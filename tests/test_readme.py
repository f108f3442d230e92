"""The README's curl walkthrough and CLI tour, run as written against a real server.

The fenced ``sh`` blocks under the two headings are run by bash, one step (command) after the
other, against ``consent-ledger serve`` on a free port and a fresh database, with the installed
``consent-ledger``. Only what the README tells the reader to fill in is replaced: the key
(``export KEY=…``), the database (``export CONSENT_LEDGER_DB=…``), the port (8000) and
``./dev cli`` (the installed command it runs). The commands run in a scratch directory holding a
copy of ``tests/fixtures/``, so the files the tour writes stay out of the repository.

Each ``# →`` comment after a command documents that command's result; a comment line indented
by two spaces or more directly below continues it. A result written as a JSON object must be
contained in the command's output — one output line per ``# →`` line, each a JSON document;
``...`` stands for keys left out, and lists must have the length shown. Any other result is
text that must appear in the output, in the order shown (a trailing ``...`` is left out).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .server_util import CLI, Server, start_server, stop_server

pytestmark = pytest.mark.slow

README = Path(__file__).parents[1] / "README.md"
FIXTURES = Path(__file__).parent / "fixtures"
WALKTHROUGH = "Walkthrough with curl"
TOUR = "CLI tour"
README_PORT = "127.0.0.1:8000"
STEP_END = "<<<end of README step>>>"
RESULT = "# →"
REQUIRE_CURL = "CL_REQUIRE_CURL"
"""Set (by ``.ci/run``) to fail instead of skipping when curl is missing."""


# -- reading the README -------------------------------------------------------------------------
@dataclass
class Step:
    """One command of a README block and the results documented below it."""

    command: str
    results: list[str] = field(default_factory=list)


def shell_blocks(markdown: str, heading: str) -> list[str]:
    """The fenced ``sh`` blocks of the ``## heading`` section."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"README.md has no section '## {heading}'"
    return re.findall(r"^```sh\n(.*?)^```", match.group(1), re.M | re.S)


def steps(block: str) -> list[Step]:
    """The commands of one block (backslash continuations joined), each with its results."""
    found: list[Step] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if line.startswith(RESULT):
            assert found, f"a result comes before any command: {line}"
            text = line.removeprefix(RESULT).strip()
            while i < len(lines) and re.match(r"#\s{2,}\S", lines[i].strip()):
                text += " " + lines[i].strip()[1:].strip()
                i += 1
            found[-1].results.append(text)
        elif line and not line.startswith("#"):
            command = lines[i - 1]
            while command.rstrip().endswith("\\"):
                command += "\n" + lines[i]
                i += 1
            found.append(Step(command))
    return found


# -- checking results ---------------------------------------------------------------------------
def as_json(text: str) -> Any:
    """A documented JSON result with its ``...`` (keys left out) removed."""
    compact = re.sub(r",\s*\.\.\.", "", text)
    compact = re.sub(r"\.\.\.\s*,?", "", compact)
    try:
        return json.loads(compact)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"README result is not JSON (with ...): {text}") from exc


def contains(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` has every key and value ``expected`` shows (lists: same length)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and contains(actual[k], v) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(contains(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return bool(type(actual) is type(expected) and actual == expected)


def check(step: Step, output: str) -> None:
    """Assert that ``output`` shows every documented result of ``step``."""
    if not step.results:
        return
    where = f"README step:\n{step.command}\noutput:\n{output}"
    if all(r.startswith("{") for r in step.results):
        lines = [line for line in output.splitlines() if line.strip()]
        assert len(lines) == len(step.results), f"expected {len(step.results)} lines; {where}"
        for line, result in zip(lines, step.results, strict=True):
            shown = as_json(result)
            assert contains(json.loads(line), shown), f"not as documented: {result}; {where}"
        return
    at = 0
    for result in step.results:
        text = result.removesuffix("...").rstrip()
        found = output.find(text, at)
        assert found >= 0, f"not as documented: {result}; {where}"
        at = found + len(text)


# -- running a block ----------------------------------------------------------------------------
def run_block(block: str, replace: dict[str, str], cwd: Path, env: dict[str, str]) -> None:
    """Run every step of ``block`` in one bash process (``set -euo pipefail``), after the given
    replacements (each must occur), and check each step's documented results."""
    found = steps(block)
    assert found, "the block has no commands"
    script = ["set -euo pipefail"]
    for step in found:
        script += [step.command, f"printf '\\n%s\\n' '{STEP_END}'"]
    text = "\n".join(script)
    for pattern, replacement in replace.items():
        assert re.search(pattern, text, re.M), f"the README block no longer has {pattern!r}"
        text = re.sub(pattern, lambda _m, r=replacement: r, text, flags=re.M)
    done = subprocess.run(
        ["bash", "-c", text], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    outputs = done.stdout.split(f"\n{STEP_END}\n")
    ran = len(outputs) - 1
    assert done.returncode == 0, (
        f"README step failed (exit {done.returncode}):\n{found[min(ran, len(found) - 1)].command}"
        f"\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    assert ran == len(found), done.stdout
    for step, output in zip(found, outputs, strict=False):
        check(step, output)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if shutil.which("curl") is None:
        message = "curl is not installed (the README walkthrough uses it; .ci/run installs it)"
        if os.environ.get(REQUIRE_CURL):
            pytest.fail(message)
        pytest.skip(message)
    running = start_server(tmp_path_factory.mktemp("readme-server"), workers=1)
    yield running
    stop_server(running)


def test_readme_walkthrough_and_tour_work_as_written(server: Server, tmp_path: Path) -> None:
    assert server.key is not None, "the admin key was not printed on stderr"
    markdown = README.read_text(encoding="utf-8")
    work = tmp_path / "work"
    shutil.copytree(FIXTURES, work / "tests" / "fixtures")
    (tmp_path / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENT_LEDGER_")}
    env["HOME"] = str(tmp_path / "home")  # no ~/.curlrc, nothing written to the real home
    port = server.url.rsplit(":", 1)[1]

    [walkthrough] = shell_blocks(markdown, WALKTHROUGH)
    run_block(
        walkthrough,
        {
            r"^export KEY=.*$": f"export KEY={shlex.quote(server.key)}",
            re.escape(README_PORT): f"127.0.0.1:{port}",
        },
        work,
        env,
    )
    assert_evidence_is_the_files_exact_bytes(server)
    [tour] = shell_blocks(markdown, TOUR)
    db = str(server.db)
    run_block(
        tour,
        {
            r"^export CONSENT_LEDGER_DB=.*$": f"export CONSENT_LEDGER_DB={shlex.quote(db)}",
            r"\./dev cli ": f"{shlex.quote(str(CLI))} ",
        },
        work,
        env,
    )
    assert (work / "bundle.json").is_file()
    assert (work / "bundle.html").is_file()


def assert_evidence_is_the_files_exact_bytes(server: Server) -> None:
    """``--data-binary @file`` posts a file as it is: the evidence kept is its exact text."""
    trail = httpx.get(
        f"{server.url}/v1/audit/ACME_MKT/%2B6581968289",
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=10,
    ).json()
    fixtures = FIXTURES / "8x8"
    assert [e["evidence"]["raw_body"] for e in trail["entries"]] == [
        (fixtures / name).read_text(encoding="utf-8")
        for name in ("inbound-sms-stop.json", "inbound-sms-start.json")
    ]
