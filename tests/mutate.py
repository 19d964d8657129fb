"""`make mutate`: mutmut over the modules that carry the README's promises, one
module group at a time, each against only the test files that guard it (so a
run takes minutes, not the whole suite per mutant). Not part of CI.

Each group runs in its own scratch copy under var/mutate/<group>/ (mutmut reads
its settings from the pyproject.toml in the directory it runs in, and keeps its
results in mutants/ there). Prints one score line per module.

    python tests/mutate.py             # every group
    python tests/mutate.py tokens rank # some of them
    MUTATE_TESTS="tests/test_rank.py" python tests/mutate.py rank  # other test files
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# group -> (modules to mutate, test files that hold them (and pytest options))
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "tokens": (["digest/mail/tokens.py"], ["tests/test_tokens.py"]),
    "headers": (["digest/mail/headers.py"], ["tests/test_headers.py"]),
    "subscribers": (["digest/subscribers/edit.py", "digest/subscribers/entries.py"],
                    ["tests/test_subscribers_edit.py", "tests/test_subscribers.py",
                     "tests/test_subscribers_entries.py"]),
    "rank": (["digest/rank/merge.py", "digest/rank/pairscore.py"],
             ["tests/test_cluster_mechanisms.py", "tests/test_cluster_event_evidence.py",
              "tests/test_cluster_quality.py",
              # the 600-article copy day: seconds per mutant (the labelled day covers the code)
              "--deselect",
              "tests/test_cluster_quality.py::test_synthetic_day_keeps_events_apart_across_copies"]),
    "journal": (["digest/store/journal.py"],
                ["tests/test_journal.py", "tests/test_send_lease.py", "tests/test_send.py",
                 "tests/test_send_faults.py"]),
    "send": (["digest/send/run.py", "digest/send/tasks.py"],
             ["tests/test_send.py", "tests/test_send_faults.py", "tests/test_send_lease.py",
              "tests/test_send_retry.py", "tests/test_send_run.py",
              "tests/test_send_commit.py"]),
}
COPY = ["digest", "tests", "templates", "feeds", "subscribers", "config.toml", "README.md"]
KILLED = {"killed", "timeout", "caught by type check"}


def settings(modules: list[str], tests: list[str]) -> str:
    only = json.dumps(modules)
    selection = json.dumps(tests)
    return (f"\n[tool.mutmut]\nsource_paths = [\"digest\"]\nonly_mutate = {only}\n"
            f"pytest_add_cli_args_test_selection = {selection}\n"
            # A mutant that makes a test wait for an event that never comes uses no
            # CPU, so mutmut's CPU limit never ends it: pytest-timeout does.
            "pytest_add_cli_args = [\"-p\", \"no:cacheprovider\", \"-q\", \"-x\", "
            "\"--timeout=30\"]\n"
            "also_copy = [\"templates\", \"feeds\", \"subscribers\", \"config.toml\"]\n"
            "use_git_change_detection = false\n")


def without_mutmut_table(text: str) -> str:
    """pyproject.toml without its [tool.mutmut] table (the group's replaces it)."""
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("["):
            inside = line.strip() == "[tool.mutmut]"
        if not inside:
            out.append(line)
    return "".join(out)


def run_group(name: str) -> dict[str, Counter[str]]:
    modules, tests = GROUPS[name]
    if os.environ.get("MUTATE_TESTS"):  # other test files, e.g. a score before new tests
        tests = os.environ["MUTATE_TESTS"].split()
    work = REPO / "var" / "mutate" / (name + ("-other" if os.environ.get("MUTATE_TESTS") else ""))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for item in COPY:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, work / item, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, work / item)
    (work / "pyproject.toml").write_text(without_mutmut_table(
        (REPO / "pyproject.toml").read_text()) + settings(modules, tests))
    env = {**os.environ, "PYTHONPATH": str(work)}
    cores = str(max(1, (os.cpu_count() or 2) - 1))
    with (work / "mutmut.log").open("w") as log:  # its progress line redraws per mutant
        subprocess.run([str(BIN / "mutmut"), "run", "--max-children", cores], cwd=work,
                       env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    listing = subprocess.run([str(BIN / "mutmut"), "results", "--all", "true"], cwd=work,
                             env=env, capture_output=True, text=True, check=False).stdout
    counts: dict[str, Counter[str]] = {m: Counter() for m in modules}
    survivors = []
    for line in listing.splitlines():
        mutant, _, status = line.strip().rpartition(": ")
        if not mutant:
            continue
        for m in modules:
            if mutant.startswith(m[:-3].replace("/", ".") + "."):
                counts[m][status] += 1
                if status == "survived":
                    survivors.append(mutant)
    (work / "survivors.txt").write_text("\n".join(survivors) + "\n")
    return counts


def main(names: list[str]) -> None:
    lines = []
    for name in names or list(GROUPS):
        for module, c in run_group(name).items():
            total = sum(c.values()) - c["skipped"]
            killed = sum(c[s] for s in KILLED)
            score = 100.0 * killed / total if total else 0.0
            lines.append(f"{module}: {killed}/{total} killed ({score:.0f}%), "
                         f"{c['survived']} survived, {c['no tests']} without tests "
                         f"(survivors: var/mutate/{name}*/survivors.txt)")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
