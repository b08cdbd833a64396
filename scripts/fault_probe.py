"""Probe the installed command lines with the faults a hostile but fair user meets, one verdict line per case.

    python scripts/fault_probe.py [--keep DIR]

Every case runs `python -m todrl.sft|rl|evaluate` in a fresh process on the embedded sample (tiny preset, a
few steps), and checks the exit status and the one line that explains it: bad settings and files exit 2 before
any work, failed runs exit 1, and nothing already written is lost. Takes a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TINY = ["--vocab-size", "400", "--max-target-length", "48", "--batch-size", "8"]


class Probe:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "TODRL_CACHE": str(root / "cache")}
        self.failures = 0

    def run(self, program: str, *args: str, background: bool = False):
        command = [sys.executable, "-m", f"todrl.{program}", *args]
        if background:
            return subprocess.Popen(command, env=self.env, cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return subprocess.run(command, env=self.env, cwd=self.root, capture_output=True, text=True)

    def sft(self, out: str, *args: str, steps: int = 4):
        return self.run("sft", "--output-dir", out, "--max-steps", str(steps), "--eval-every", "2", *TINY, *args)

    def case(self, name: str, check: Callable[[], str | None]) -> None:
        """A case passes when `check` returns None; otherwise it returns what went wrong."""
        start = time.perf_counter()
        try:
            problem = check()
        except Exception as error:  # a probe that crashes is a failed case, and the others still run
            problem = f"probe raised {type(error).__name__}: {error}"
        self.failures += problem is not None
        verdict = "ok  " if problem is None else "FAIL"
        print(f"{verdict} {name} ({time.perf_counter() - start:.1f} s){'' if problem is None else ': ' + problem}", flush=True)


def refused(result, message: str, status: int = 2) -> str | None:
    """None when the command exited with `status` and said `message` on one line of stderr."""
    lines = [line for line in result.stderr.splitlines() if message in line]
    if result.returncode != status:
        return f"exit {result.returncode}, expected {status}; stderr tail: {result.stderr.strip()[-300:]}"
    if not lines:
        return f"stderr does not say {message!r}: {result.stderr.strip()[-300:]}"
    if "Traceback" in result.stderr:
        return "a traceback was printed"
    return None


def succeeded(result) -> str | None:
    return None if result.returncode == 0 else f"exit {result.returncode}: {result.stderr.strip()[-300:]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        probe = Probe(root)
        started = time.perf_counter()
        settings(probe)
        run_directories(probe)
        evaluation(probe)
        print(f"{probe.failures} failed; {time.perf_counter() - started:.0f} s in all")
    sys.exit(1 if probe.failures else 0)


def settings(probe: Probe) -> None:
    for program, flags, message in [
        ("sft", ["--lr", "inf"], "lr must be in (0, 1], got inf"),
        ("sft", ["--lr", "1e30"], "lr must be in (0, 1]"),
        ("sft", ["--max-steps", "-5"], "max_steps must be in [0, inf)"),
        ("sft", ["--max-source-length", "0"], "max_source_length must be in [1, inf)"),
        ("rl", ["--lr", "1e3"], "lr must be in (0, 1]"),
        ("rl", ["--save-every", "0"], "save_every must be in [1, inf)"),
        ("rl", ["--clip-range", "-0.2"], "clip_range must be in (0, 1)"),
        ("rl", ["--top-k", "-5"], "top_k must be in [0, inf)"),
    ]:
        probe.case(f"{program} {' '.join(flags)}: refused at parse time",
                   lambda p=program, f=flags, m=message: refused(probe.run(p, *f, "--output-dir", "unused"), m))


def run_directories(probe: Probe) -> None:
    def concurrent() -> str | None:
        first = probe.run("sft", "--output-dir", "shared", "--max-steps", "30", *TINY, background=True)
        lock = probe.root / "shared" / ".lock"
        while first.poll() is None and not (lock.is_file() and lock.read_text().strip()):
            time.sleep(0.2)
        second = probe.sft("shared")
        first.communicate()
        return refused(second, f"in use by another run (pid {first.pid})") or (
            None if first.returncode == 0 else f"the first run exited {first.returncode}")

    probe.case("two runs into one output_dir: the second is refused, naming the first's pid", concurrent)

    def finished() -> str | None:
        if problem := succeeded(probe.sft("done")):
            return problem
        summary = (probe.root / "done" / "summary.json").read_text()
        problem = refused(probe.sft("done", "--seed", "7"), "already holds a run")
        if problem or (probe.root / "done" / "summary.json").read_text() != summary:
            return problem or "the finished run's summary changed"
        result = probe.sft("done", "--seed", "7", "--overwrite")
        saved = json.loads((probe.root / "done" / "last" / "trainer_state.json").read_text())["config"]["seed"]
        return None if result.returncode == 0 and saved == 7 else f"--overwrite: exit {result.returncode}, seed {saved}"

    probe.case("a fresh run over a finished one is refused; --overwrite replaces it", finished)
    probe.case("--resume with another lr and seed: refused, naming both values",
               lambda: refused(probe.sft("done", "--resume", "--lr", "5e-3", "--seed", "8"), "lr: 0.002 in the run, 0.005 now"))

    def crash_states() -> str | None:
        os.replace(probe.root / "done" / "last", probe.root / "done" / ".last.old")
        (probe.root / "done" / ".last.tmp-999999").mkdir()
        result = probe.sft("done", "--resume", "--seed", "7", steps=6)
        if problem := succeeded(result):
            return problem
        if (probe.root / "done" / ".last.tmp-999999").exists():
            return "the killed writer's scratch directory is still there"
        return None if "max_steps changed from 4 to 6" in result.stdout else "the lengthened schedule was not reported"

    probe.case("--resume after a crash between the renames of a checkpoint swap, scratch left behind", crash_states)

    def diverged() -> str | None:
        result = probe.run("rl", "--model", "done", "--output-dir", "rl", "--episodes", "16", "--save-every", "1",
                           "--eval-every", "0", "--reward", "tod", "--max-new-tokens", "24")
        if problem := succeeded(result):
            return problem
        log = probe.root / "rl" / "metrics.jsonl"
        log.write_text(log.read_text() + '{"iteration": 3, "env/ta')  # a write cut by a kill
        result = probe.run("rl", "--model", "done", "--output-dir", "rl", "--episodes", "16", "--save-every", "1",
                           "--eval-every", "0", "--reward", "tod", "--max-new-tokens", "24", "--resume")
        return succeeded(result) or (
            None if "dropping the torn last line" in result.stdout else "the torn line was not reported")

    probe.case("RL --resume with a torn last line in metrics.jsonl: dropped and reported", diverged)


def evaluation(probe: Probe) -> None:
    probe.case("evaluate --limit 0: refused before generating",
               lambda: refused(probe.run("evaluate", "--checkpoint", "done/best", "--limit", "0"), "--limit"))
    probe.case("evaluate --checkpoint missing: one line",
               lambda: refused(probe.run("evaluate", "--checkpoint", "nowhere"), "nowhere"))
    probe.case("evaluate --output into a missing folder: refused before generating",
               lambda: refused(probe.run("evaluate", "--checkpoint", "done/best", "--output", "no/such/dir/p.json"), "no/such/dir"))
    probe.case("evaluate --predictions DIR: one line", lambda: refused(probe.run("evaluate", "--predictions", "."), "."))

    deep = probe.root / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    probe.case("evaluate on a 100k-deep nested JSON: one line naming the file",
               lambda: refused(probe.run("evaluate", "--predictions", str(deep)), str(deep)))
    empty = probe.root / "empty.json"
    empty.write_text("{}")
    probe.case("evaluate on an empty predictions file: refused",
               lambda: refused(probe.run("evaluate", "--predictions", str(empty), "--dataset", "incar"), str(empty)))
    huge = probe.root / "huge.json"
    huge.write_text(json.dumps({"sng0073": [{"response": "a " * 25_000_000}]}))
    probe.case("evaluate on a 50M-character response: refused quickly, naming dialogue and turn",
               lambda: refused(probe.run("evaluate", "--predictions", str(huge)), "sng0073"))

    def lexer() -> str | None:
        code = "import time; from rewards import tod_reward, Gold; t = time.perf_counter(); " \
               "tod_reward('<' * 800_000, Gold({'hotel': {'area': 'east'}})); print(time.perf_counter() - t)"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=probe.env)
        seconds = float(result.stdout or "inf")
        return None if seconds < 2 else f"tod_reward on 800k '<' took {seconds:.1f} s"

    probe.case("tod_reward on 800k characters of '<': linear", lexer)

    def partial() -> str | None:
        from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz

        dialogue = load_multiwoz(SAMPLE_PATH, "test")[0]
        file = probe.root / "partial.json"
        file.write_text(json.dumps({dialogue.id: [{"response": t.system_delex} for t in dialogue.turns]}))
        result = probe.run("evaluate", "--predictions", str(file), "--data-dir", str(SAMPLE_PATH), "--json")
        coverage = json.loads(result.stdout).get("coverage", {}) if result.returncode == 0 else {}
        if coverage.get("complete") is not False:
            return f"the result does not say it is partial: {coverage or result.stderr.strip()[-200:]}"
        return refused(probe.run("evaluate", "--predictions", str(file), "--data-dir", str(SAMPLE_PATH), "--strict"),
                       "--strict")

    probe.case("a partial predictions file: marked in the result; --strict refuses it", partial)


if __name__ == "__main__":
    main()
