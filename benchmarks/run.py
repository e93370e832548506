"""Time rosenblatt against PyTorch on the same workloads, in the same run, and write RESULTS.md.

    python benchmarks/run.py                 # every workload, full rounds
    python benchmarks/run.py --quick         # fewer rounds (a smoke run, not for the record)
    python benchmarks/run.py --filter mlp    # workloads whose name or group contains "mlp"
    python benchmarks/run.py --runs 3        # three whole runs per workload (RESULTS.md gives the spread)

Both frameworks get 2 threads, and each runs in a worker process of its own (they would otherwise
share one OpenMP runtime: PyTorch's wheel and oneDNN both load ``libgomp.so.1``). Each workload is
timed in interleaved rounds (rosenblatt, PyTorch, rosenblatt, ...) so that machine noise hits both
alike; the reported time is the median per step,
and the ratio is torch_time / rosenblatt_time (above 1: rosenblatt is faster). The machine's load
is read from /proc/stat around every round, and a round during which other processes kept the
cores busy is thrown away and redone. The kernel set (``rb.backend.kernels()``) is recorded.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

THREADS = "2"
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(var, THREADS)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))


def _module_workloads() -> list:
    workloads = []
    for path in sorted((HERE / "workloads").glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"workloads.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for w in getattr(module, "WORKLOADS", []):
            w.extra.setdefault("module", path.stem)
            workloads.append(w)
    return workloads


BUSY_WORKLOADS = {"MLP": "MLP 784-512-256-10 train step (nn layers, optim.SGD), batch 128",
                  "LeNet-5": "LeNet-5 train step (SGD), batch 64, 1x28x28"}


def _system_workloads(workloads: list) -> list:
    """Rows about the framework rather than one op: busy-machine slowdowns and import time."""
    from common import Workload

    by_name = {w.name: w for w in workloads}
    rows = []
    for short, name in BUSY_WORKLOADS.items():
        if name in by_name:
            rows.append(Workload(f"busy machine: {short} train step, slowdown while {os.cpu_count()} processes spin",
                                 "system", by_name[name].setup, target=1.0, extra={"kind": "busy"}))
    rows.append(Workload("import time (fresh interpreter)", "system", lambda: None, target=1.0,
                         extra={"kind": "import"}))
    return rows


def load_workloads(name_filter: str | None = None):
    workloads = _module_workloads()
    workloads += _system_workloads(workloads)
    if name_filter:
        workloads = [w for w in workloads if name_filter.lower() in (w.name + " " + w.group).lower()]
    return workloads


def _time_calls(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# A round is thrown away when other processes kept more than this many cores busy during it.
DISTURBED_CORES = 0.3


def _load_sample() -> tuple[float, float, float]:
    """(wall time, CPU seconds of the whole machine, CPU seconds of this process) from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    busy = (sum(fields) - fields[3] - fields[4]) / _CLOCK_TICKS
    t = os.times()
    return time.perf_counter(), busy, t.user + t.system


def other_load(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """Cores that other processes kept busy between two samples."""
    wall = after[0] - before[0]
    if wall <= 0:
        return 0.0
    return max(0.0, ((after[1] - before[1]) - (after[2] - before[2])) / wall)


class DisturbedError(RuntimeError):
    """The machine stayed busy: not enough undisturbed rounds."""


# -- each framework in its own process ----------------------------------------------------------
#
# PyTorch's wheel ships its own ``libgomp.so.1`` and oneDNN needs one too: in one process both
# frameworks would share whichever OpenMP runtime was loaded first, with the wait policy and
# thread count that the first one chose. So each side runs in a worker process of its own, as a
# user would run it, and the runner interleaves their rounds. A worker imports both frameworks
# (``setup()`` builds both models, with the same weights) but loads its own side's native
# libraries first, so its OpenMP runtime starts with its own side's settings.

SETTLE = 0.05  # seconds between two rounds: the other side's idle threads stop spinning


class Worker:
    """A process that runs one side of one workload and times it on request."""

    def __init__(self, name: str, side: str) -> None:
        code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import run; "
                f"run.worker_main({name!r}, {side!r})")
        self.side = side
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=HERE)
        self.steps = self._read()["steps"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.side} worker died (exit status {self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.side} worker: {reply['error']}")
        return reply

    def ask(self, **command) -> dict:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def worker_main(name: str, side: str) -> None:
    """The worker's loop: build the workload, then answer timing commands on stdin/stdout."""
    try:
        if side == "rb":
            import rosenblatt as rb

            rb.backend.kernels()  # load oneDNN (and its OpenMP runtime) before anything else does
        else:
            import torch

            torch.set_num_threads(int(THREADS))
        workload = {w.name: w for w in load_workloads()}[name]
        rb_step, torch_step = workload.setup()
        if side == "rb":
            steps = [rb_step]
            if "numpy_setup" in workload.extra:
                steps.append(workload.extra["numpy_setup"]())
        else:
            steps = [torch_step]
            if "foreach_setup" in workload.extra:
                steps.append(workload.extra["foreach_setup"]())
        del rb_step, torch_step
        for _ in range(3):  # warm-up: caches, buffer pools, lazy initialisation
            for step in steps:
                step()
    except Exception as err:  # noqa: BLE001 - reported to the runner
        print(json.dumps({"error": f"{type(err).__name__}: {err}"}), flush=True)
        return
    print(json.dumps({"steps": len(steps)}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command["cmd"] == "one":
            reply = {"times": [_steady_call_time(step, command.get("seconds", 0.05)) for step in steps]}
        elif command["cmd"] == "settle":
            deadline = time.perf_counter() + command["seconds"]
            while time.perf_counter() < deadline:
                steps[0]()
            reply = {}
        else:
            before = _load_sample()
            times = [_time_calls(step, command["n"]) for step in steps[: command.get("steps", len(steps))]]
            reply = {"times": times, "other_load": other_load(before, _load_sample())}
        print(json.dumps(reply), flush=True)


def _workers(workload) -> tuple[Worker, Worker]:
    rb_worker = Worker(workload.name, "rb")
    try:
        return rb_worker, Worker(workload.name, "torch")
    except BaseException:
        rb_worker.close()
        raise


def _steady_call_time(fn, seconds: float) -> float:
    """Seconds per call of ``fn`` once warm: the mean over calls made for about ``seconds``, after
    one untimed call. A single timed call misjudges it: the first call after a pause wakes sleeping
    threads and cold caches (a batch-1 MLP: 0.6-3 ms against 60 us), and rounds sized on it lasted
    tens of calls instead of the budget."""
    fn()
    start = time.perf_counter()
    calls = 0
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls


def _calls_per_round(workers: tuple[Worker, Worker], budget: float) -> int:
    one = max(max(w.ask(cmd="one")["times"]) for w in workers)
    return max(3, int(budget / max(one, 1e-6)))  # at least 3 calls: the switch is not timed alone


def measure(workload, rounds: int, budget: float, check_load: bool = True) -> dict:
    """Median time per step of each side (and of PyTorch's foreach optimiser and raw NumPy where the
    workload has them), from interleaved rounds of the two workers."""
    workers = _workers(workload)
    try:
        n = _calls_per_round(workers, budget)
        times: list[list[float]] = [[], []]
        extra: list[list[float]] = [[], []]
        discarded = 0
        while len(times[0]) < rounds:
            replies = []
            for w in workers:
                time.sleep(SETTLE)
                replies.append(w.ask(cmd="round", n=n))
            if check_load and max(r["other_load"] for r in replies) > DISTURBED_CORES:
                discarded += 1
                if discarded > 4 * rounds:
                    raise DisturbedError(f"the machine stayed busy: {discarded} disturbed rounds thrown away")
                time.sleep(0.2)
                continue
            for i, r in enumerate(replies):
                times[i].append(r["times"][0])
                if len(r["times"]) > 1:
                    extra[i].append(r["times"][1])
    finally:
        for w in workers:
            w.close()
    result = {"rb_s": statistics.median(times[0]), "torch_s": statistics.median(times[1]), "calls": n,
              "discarded_rounds": discarded, "ratio": statistics.median(times[1]) / statistics.median(times[0])}
    if extra[1]:
        result["foreach_s"] = statistics.median(extra[1])
        result["foreach_ratio"] = result["foreach_s"] / result["rb_s"]
    if extra[0]:
        result["numpy_s"] = statistics.median(extra[0])
    return result


_IMPORT = "import time, sys; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def import_time(rounds: int) -> dict:
    """Seconds to import each framework in a fresh interpreter (median of ``rounds`` runs each)."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}

    def once(module: str) -> float:
        out = subprocess.run([sys.executable, "-c", _IMPORT.format(module=module)], capture_output=True,
                             text=True, check=True, env=env)
        return float(out.stdout.strip().splitlines()[-1])

    rb_times, torch_times = [], []
    for _ in range(max(3, rounds)):
        rb_times.append(once("rosenblatt"))
        torch_times.append(once("torch"))
    rb_s, torch_s = statistics.median(rb_times), statistics.median(torch_times)
    return {"rb_s": rb_s, "torch_s": torch_s, "calls": 1, "ratio": torch_s / rb_s}


_SPINNER = "while True: pass"


def busy_machine(workload, rounds: int, budget: float, settle: float = 1.5) -> dict:
    """Each side's slowdown while as many other processes spin as there are cores.

    Both workers are timed in interleaved rounds on the quiet machine, then again while the
    spinners run (after each side has run for ``settle`` seconds, so that a policy that looks at
    the load has seen it); the slowdown is busy time / quiet time. Fair sharing of the cores would
    give about 2.
    """
    workers = _workers(workload)
    spinners: list = []
    try:
        n = _calls_per_round(workers, budget)
        quiet: list[list[float]] = [[], []]
        busy: list[list[float]] = [[], []]
        for _ in range(rounds):
            for i, w in enumerate(workers):
                time.sleep(SETTLE)
                quiet[i].append(w.ask(cmd="round", n=n, steps=1)["times"][0])
        spinners = [subprocess.Popen([sys.executable, "-c", _SPINNER]) for _ in range(os.cpu_count() or 1)]
        for w in workers:
            w.ask(cmd="settle", seconds=settle)
        for _ in range(rounds):
            for i, w in enumerate(workers):
                busy[i].append(w.ask(cmd="round", n=n, steps=1)["times"][0])
    finally:
        for p in spinners:
            p.kill()
        for p in spinners:
            p.wait()
        for w in workers:
            w.close()
    rb_slowdown = statistics.median(busy[0]) / statistics.median(quiet[0])
    torch_slowdown = statistics.median(busy[1]) / statistics.median(quiet[1])
    return {"rb_s": rb_slowdown, "torch_s": torch_slowdown, "calls": n, "ratio": torch_slowdown / rb_slowdown,
            "quiet_rb_s": statistics.median(quiet[0]), "quiet_torch_s": statistics.median(quiet[1])}


_PROBE = """
import os, sys, threading, time
sys.path.insert(0, {src!r}); sys.path.insert(0, {here!r})
import run
if {side!r} == "rb":
    import rosenblatt
    rosenblatt.backend.kernels()  # its own OpenMP runtime first, as in the timing workers
workload = {{w.name: w for w in run.load_workloads()}}[{name!r}]
steps = workload.setup()
step = steps[0 if {side!r} == "rb" else 1]
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

step()  # first step: lazily created state and buffers belong to the steady state
base, peak, done = rss(), [0], threading.Event()

def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.0005)

sampler = threading.Thread(target=sample)
sampler.start()
for _ in range(3):
    step()
done.set()
sampler.join()
print(max(peak[0], rss()), base)
"""


def peak_memory(workload, side: str) -> tuple[float, float]:
    """Peak resident memory (MB) of a fresh process during 3 training steps of one side, and its
    resident memory before them. Both processes import both frameworks and build both models, so
    the difference between the sides is what their training steps use."""
    code = _PROBE.format(src=str(HERE.parent / "src"), here=str(HERE), name=workload.name, side=side)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=HERE, check=True)
    peak, base = (float(v) / 2**20 for v in out.stdout.strip().splitlines()[-1].split())
    return peak, base


def machine_info() -> dict:
    import numpy as np

    import rosenblatt as rb
    from rosenblatt.kernels import threads

    info = {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
            "cpu": platform.processor() or "", "threads": THREADS, "kernels": rb.backend.kernels(),
            "blas": threads.blas_info()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = "not installed"
    return info


def write_results(rows: list[dict], info: dict, path: Path) -> None:
    lines = [
        "# Benchmark results",
        "",
        "Written by `python benchmarks/run.py`. Same machine, same run, 2 threads each, each framework in",
        "a worker process of its own; medians of interleaved rounds, and rounds during which other",
        "processes used the machine are thrown away.",
        "**ratio = PyTorch time / rosenblatt time** (above 1: rosenblatt is faster), the median over",
        f"{info['runs']} runs; *spread* is the lowest and highest ratio of those runs. *foreach* is",
        "PyTorch's multi-tensor optimiser implementation (`foreach=True`), a second reference.",
        "Busy-machine rows give each framework's slowdown (busy time / quiet time) while as many other",
        "processes spin as there are cores; their ratio is PyTorch's slowdown / rosenblatt's.",
        "",
        f"Machine: {info['cpu']} ({info['machine']}), Python {info['python']}, NumPy {info['numpy']} "
        f"({info['blas']}), PyTorch {info['torch']}, {info['threads']} threads. "
        f"Kernels: {info['kernels']}.",
        "",
        "| group | workload | rosenblatt | PyTorch | ratio | spread | PyTorch foreach | ratio (foreach) | target | |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        target = row.get("target")
        status = "" if target is None else ("met" if row["ratio"] >= target else "**below**")
        busy = row.get("kind") == "busy"
        show = (lambda v: f"{v:.2f}x") if busy else _fmt
        spread = f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}" if "ratio_min" in row else ""
        foreach = (f"{_fmt(row['foreach_s'])} | {row['foreach_ratio']:.2f}" if "foreach_s" in row else " | ")
        lines.append(
            f"| {row['group']} | {row['name']} | {show(row['rb_s'])} | {show(row['torch_s'])} | "
            f"{row['ratio']:.2f} | {spread} | {foreach} | {'' if target is None else f'{target:.2f}'} | {status} |"
        )
    extras = [r for r in rows if "numpy_s" in r or "rb_peak_mb" in r]
    if extras:
        lines += ["", "| workload | detail |", "|---|---|"]
        for row in extras:
            if "numpy_s" in row and row.get("ops"):
                ops = row["ops"]
                overhead = (row["rb_s"] - row["numpy_s"]) / ops * 1e6
                what = "forward, graph recorded" if "forward only" in row["name"] else "forward + backward"
                lines.append(f"| {row['name']} | raw NumPy {_fmt(row['numpy_s'])}; rosenblatt overhead "
                             f"{overhead:.2f} µs per op ({what}) |")
            if "rb_peak_mb" in row:
                lines.append(f"| {row['name']} | peak resident memory during 3 training steps: rosenblatt "
                             f"{row['rb_peak_mb']:.0f} MB, PyTorch {row['torch_peak_mb']:.0f} MB (each side in "
                             f"its own process, which imports both frameworks and builds both models) |")
    path.write_text("\n".join(lines) + "\n")


def _fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--filter", default=None)
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=2, help="whole measurements per workload (the spread is over these)")
    parser.add_argument("--budget", type=float, default=0.3, help="seconds per side per round")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("torch") is None:
        print("PyTorch is not installed: nothing to compare against (pip install torch==2.13.0)", file=sys.stderr)
        return 1
    rounds, budget = (2, 0.05) if args.quick else (args.rounds, args.budget)
    runs = 1 if args.quick else max(1, args.runs)
    rows = []
    for w in load_workloads(args.filter):
        kind = w.extra.get("kind")
        try:
            results = []
            for _ in range(runs):
                if kind == "busy":
                    results.append(busy_machine(w, rounds, budget))
                elif kind == "import":
                    results.append(import_time(rounds))
                else:
                    results.append(measure(w, rounds, budget, check_load=not args.quick))
        except Exception as err:  # one broken workload must not hide the others
            print(f"{w.group:6s} {w.name}: FAILED ({type(err).__name__}: {err})", file=sys.stderr)
            continue
        result = {key: statistics.median(r[key] for r in results) for key in results[0]
                  if isinstance(results[0][key], (int, float))}
        ratios = [r["ratio"] for r in results]
        if runs > 1:
            result["ratio_min"], result["ratio_max"] = min(ratios), max(ratios)
        row = {"group": w.group, "name": w.name, "target": w.target, "kind": kind, **result}
        if "ops" in w.extra:
            row["ops"] = w.extra["ops"]
        if w.memory and not args.quick:
            row["rb_peak_mb"], row["rb_base_mb"] = peak_memory(w, "rb")
            row["torch_peak_mb"], row["torch_base_mb"] = peak_memory(w, "torch")
        rows.append(row)
        flag = "" if w.target is None else ("  (target %.2f %s)" % (w.target, "met" if row["ratio"] >= w.target else "BELOW"))
        show = (lambda v: f"{v:.2f}x") if kind == "busy" else _fmt
        foreach = f"  foreach {_fmt(row['foreach_s']):>10s} ({row['foreach_ratio']:.2f})" if "foreach_s" in row else ""
        print(f"{w.group:6s} {w.name:55s} rb {show(row['rb_s']):>10s}  torch {show(row['torch_s']):>10s}  "
              f"ratio {row['ratio']:.2f}{foreach}{flag}", flush=True)
    if not args.no_write and not args.quick:
        write_results(rows, {**machine_info(), "runs": runs}, Path(args.out))
        print(f"wrote {args.out}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
