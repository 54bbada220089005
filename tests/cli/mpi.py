#!/usr/bin/python3
"""End-to-end tests of chunkmeans as one MPI job: under `mpirun -n N` (N = 1 to 4, with 1 or 2
OpenMP threads a rank) run, fit and apply write the very bytes that one process writes with the
same arguments. Inputs are small tiled TIFFs made here (tifffile), read with --tile 16 so that
every image is a number of chunks that 2, 3 and 4 do not divide. Two test-only switches of the
command prove that the checks can fail: CM_TEST_MPI_ALLREDUCE=1 (reductions by MPI_Allreduce on
doubles: other bytes) and CM_TEST_FAIL_RANK=R (rank R fails mid-fit: the job must end quickly
and leave nothing). Open MPI's mpirun only (its flags); two cores are oversubscribed.
Usage: mpi.py CHUNKMEANS MPIRUN CASE (run by meson test; MPIRUN '' when meson found none, and
exit 77 then skips the case)."""
import collections
import filecmp
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import tifffile


class Failed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Failed(msg)


CM = MPIRUN = None
RANKS = (1, 2, 3, 4)
THREADS = (1, 2)
# A sanitized build checks memory, not the matrix, which the release build runs: one rank, and
# three of two threads (a count no image's chunks divide), in a quarter of the time.
if os.environ.get("CM_TEST_MPI_FEW") == "1":
    RANKS, THREADS = (1, 3), (2,)
TIMEOUT = 120  # seconds for any one command: a hung job fails instead of blocking meson
TILE = 16  # the chunk side (--tile) and the inputs' tile side
# Open MPI as root in a container, with more processes than cores; ranks that wait yield the
# core rather than spin on it (two shared cores).
MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
    "OMPI_MCA_mpi_yield_when_idle": "1",
}

# A sanitized build's settings, which its ranks need too (meson gives them: tests/meson.build).
SANITIZER_OPTIONS = ("ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS")

# ---------------------------------------------------------------------------------------------
# Running commands

Result = collections.namedtuple("Result", "code out err seconds")


def run(argv, cwd=".", env=None, timeout=TIMEOUT, drop=()):
    """Runs ARGV in its own process group, with ENV added to the environment and the names DROP
    taken out; one still running after TIMEOUT seconds is stopped (SIGTERM to the group, which
    mpirun passes on to its ranks, then SIGKILL) and fails."""
    argv = [str(a) for a in argv]
    print(f"$ (in {cwd}) {' '.join(argv)}", flush=True)
    start = time.monotonic()
    env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k not in drop}
    p = subprocess.Popen(argv, cwd=cwd, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
        raise Failed(f"{' '.join(argv)}: still running after {timeout} s, stopped")
    return Result(p.returncode, out, err, time.monotonic() - start)


def mpirun_argv(n, threads, env=()):
    """The launcher's command line for N ranks of THREADS threads, passing on the names ENV."""
    argv = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-n", n,
            "-x", f"OMP_NUM_THREADS={threads}"]
    for name in env:
        argv += ["-x", name]
    for name in SANITIZER_OPTIONS:  # the ranks of a sanitized build, on every node
        if name in os.environ:
            argv += ["-x", name]
    return argv


def read(path):
    with open(path) as f:
        return f.read()


def check_launcher():
    """MPIRUN is Open MPI's, and the command line of mpirun_argv starts N processes: ranks 0 to
    N-1 of a job of N, each with OMP_NUM_THREADS set."""
    r = run([MPIRUN, "--version"])
    expect(r.code == 0 and "Open MPI" in r.out + r.err,
           f"{MPIRUN} is not Open MPI's mpirun (exit {r.code}): {(r.out + r.err).strip()}; these "
           "tests use Open MPI's flags (--oversubscribe, --bind-to, -x)")
    # each process writes a file of its own: the ranks' output to a pipe may interleave
    probe = ("import os; e = os.environ; open('rank.' + e['OMPI_COMM_WORLD_RANK'], 'x').write("
             "e['OMPI_COMM_WORLD_SIZE'] + ' ' + e['OMP_NUM_THREADS'])")
    for n in RANKS:
        d = f"launcher.{n}"
        os.mkdir(d)
        r = run(mpirun_argv(n, 2) + [sys.executable, "-c", probe], cwd=d, env=MPI_ENV)
        expect(r.code == 0, f"mpirun -n {n} python3 exited {r.code}: {tail(r.err)}")
        got = {f: read(os.path.join(d, f)) for f in sorted(os.listdir(d))}
        want = {f"rank.{i}": f"{n} 2" for i in range(n)}
        expect(got == want, f"mpirun -n {n} started processes that say (size, threads) {got}, "
               f"not {want}")


def tail(text, lines=12):
    """The last LINES lines of TEXT (-v prints a line per file or step)."""
    return "\n".join(text.strip().splitlines()[-lines:])


def sanitizer_clean(r):
    expect(not re.search(r"Sanitizer|runtime error:", r.err), f"sanitizer report:\n{r.err}")


def one(cwd, *args):
    """chunkmeans ARGS in CWD as one process, without a launcher; it must succeed."""
    r = run([CM, *args], cwd=cwd)
    sanitizer_clean(r)
    expect(r.code == 0, f"chunkmeans {' '.join(map(str, args))} exited {r.code}: {tail(r.err)}")
    return r


def job(n, threads, cwd, *args, env=None, code=0, timeout=TIMEOUT):
    """chunkmeans ARGS (which hold -v) in CWD under mpirun, N ranks of THREADS threads, with the
    variables ENV; it must exit CODE (None: any but 0) and say it is a job of N ranks."""
    env = env or {}
    # Not mpirun under meson's MALLOC_PERTURB_: Open MPI 4.1.4's mpirun then crashes (SIGSEGV
    # in pmix_server_log) about every other time that several ranks call MPI_Abort at once.
    r = run(mpirun_argv(n, threads, env) + [CM, *args], cwd=cwd, env={**MPI_ENV, **env},
            timeout=timeout, drop=("MALLOC_PERTURB_",))
    sanitizer_clean(r)
    what = f"mpirun -n {n} (OMP_NUM_THREADS={threads}) chunkmeans {' '.join(map(str, args))}"
    expect(r.code != 0 if code is None else r.code == code,
           f"{what} exited {r.code}, expected {'non-zero' if code is None else code}; "
           f"stderr: {tail(r.err)}")
    said = re.findall(r"job of (\d+) ranks?(?:, (\d+) threads?)?", r.err)
    expect(said, f"{what}: no 'job of {n} ranks' line in -v output: {tail(r.err)}")
    for ranks, t in said:
        expect(int(ranks) == n, f"{what}: says 'job of {ranks} ranks'")
        expect(not t or int(t) == threads, f"{what}: says {t} threads each, not {threads}")
    return r


# ---------------------------------------------------------------------------------------------
# Inputs and comparisons

def chunks(h, w):
    return -(-h // TILE) * -(-w // TILE)


def image(path, h, w, kind, seed):
    """A TIFF of 16x16 tiles (deflate): smooth gradients and seeded noise. KIND: u8 (RGB),
    u16 (grey), f32 (3 bands, values of about 0 to 1000 with every mantissa bit used) or wide
    (float32 of both signs from about 2^-40 to 2^40, whose sums in double round, where those of
    f32's values are exact in any order)."""
    expect(all(chunks(h, w) % n for n in RANKS[1:]), f"{path}: {chunks(h, w)} chunks of "
           f"{TILE}x{TILE}, a multiple of some N")
    r = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    a = np.stack([x, y, (1 - x) * y + 0.3 * np.sin(6 * x)], axis=-1)
    a += r.normal(0, 0.06, a.shape)
    if kind == "u8":
        data = np.clip(a * 255, 0, 255).astype(np.uint8)
    elif kind == "u16":
        data = np.clip(a[..., 0] * 40000 + a[..., 1] * 20000, 0, 65535).astype(np.uint16)
    elif kind == "wide":
        data = (np.exp(r.normal(0, 8, a.shape)) * r.normal(0, 1, a.shape)).astype(np.float32)
    else:
        data = (a * 1000).astype(np.float32)
    tifffile.imwrite(path, data, tile=(TILE, TILE), compression="zlib",
                     photometric="rgb" if data.ndim == 3 else "minisblack")


def tree(d):
    """Every file under D (hidden ones too), as sorted paths relative to D."""
    return sorted(os.path.relpath(os.path.join(top, f), d)
                  for top, _, files in os.walk(d) for f in files)


# The summary's counts of chunk reads are the job's I/O, not its result: a chunk the fit kept
# is reused only by the rank that read it. They are compared apart (same_summary).
IO_COUNTS = ("fit_chunks_read", "chunks_read", "chunks_reused")


def same_summary(a, b):
    """Whether two summaries agree byte for byte once the I/O counts are taken out, and the
    job read every chunk at least once."""
    def without(path):
        with open(path) as f:
            lines = f.readlines()
        return [l for l in lines if not any(f'"{k}"' in l for k in IO_COUNTS)]
    with open(b) as f:
        got = json.load(f)
    return without(a) == without(b) and got["chunks_read"] + got["chunks_reused"] == got["chunks"]


def same(a, b):
    if os.path.basename(a).startswith("summary"):
        return same_summary(a, b)
    return filecmp.cmp(a, b, False)


def differences(ref, got):
    """Names that only one of the directories REF and GOT holds, and files of other bytes."""
    a, b = tree(ref), tree(got)
    other = sorted(set(a) ^ set(b))
    return other + [f for f in a if f in b and not same(os.path.join(ref, f),
                                                        os.path.join(got, f))]


def against_one_process(label, args, expected):
    """Runs chunkmeans ARGS (paths relative to a directory two below the top) in ref/LABEL
    without a launcher, which must then hold exactly the files EXPECTED, and under mpirun for
    every N and number of threads in nN.tT/LABEL: each must hold the reference's files, byte
    for byte. Returns the reference run."""
    ref = os.path.join("ref", label)
    os.makedirs(ref)
    r = one(ref, *args)
    expect(tree(ref) == sorted(expected), f"{label}: one process wrote {tree(ref)}, not "
           f"{sorted(expected)}")
    for n in RANKS:
        for t in THREADS:
            d = os.path.join(f"n{n}.t{t}", label)
            os.makedirs(d)
            job(n, t, d, *args)
            diff = differences(ref, d)
            expect(not diff, f"{label}: -n {n} with {t} threads differs from one process in "
                   f"{len(diff)} files: {diff[:6]}")
    return r


def remap_chunks(r, h, w):
    """The run's -v summary counts the chunks of --tile 16, not one chunk of 512."""
    m = re.search(r"\((\d+) chunks", r.err)
    expect(m and int(m.group(1)) == chunks(h, w), f"the run reads {m and m.group(1)} chunks, "
           f"expected {chunks(h, w)}: {tail(r.err)}")


def run_args(src, k, algorithm, *more):
    return ["run", f"../../in/{src}", "out.tif", "-k", k, "--seed", 3, "--algorithm", algorithm,
            "--tile", TILE, "--labels", "labels.tif", "--model-out", "model.json", "-v", *more]


RUN_OUTPUTS = ["labels.tif", "model.json", "out.tif"]  # sorted, as tree() gives them

# ---------------------------------------------------------------------------------------------
# Cases


def case_run_int():
    """run on 8-bit RGB (minibatch, histogram) and 16-bit grey (lloyd) gives one process's
    output, labels and model for every N and threads."""
    os.mkdir("in")
    image("in/u8.tif", 80, 112, "u8", seed=1)
    image("in/u16.tif", 75, 70, "u16", seed=2)
    for label, src, algorithm in (("u8_minibatch", "u8.tif", "minibatch"),
                                  ("u8_histogram", "u8.tif", "histogram"),
                                  ("u16_lloyd", "u16.tif", "lloyd")):
        r = against_one_process(label, run_args(src, 5, algorithm), RUN_OUTPUTS)
        remap_chunks(r, *((80, 112) if src == "u8.tif" else (75, 70)))


def case_run_float():
    """run on float32 samples of 3 bands (minibatch, lloyd) gives one process's bytes."""
    os.mkdir("in")
    image("in/f32.tif", 80, 112, "f32", seed=3)
    for algorithm in ("minibatch", "lloyd"):
        r = against_one_process("f32_" + algorithm, run_args("f32.tif", 5, algorithm),
                                RUN_OUTPUTS)
        remap_chunks(r, 80, 112)


def case_k_list():
    """run -k 2,5 (one output, label map and model per k, and the summary) gives one process's
    bytes, on 8-bit RGB (minibatch) and float32 (lloyd)."""
    os.mkdir("in")
    image("in/u8.tif", 100, 100, "u8", seed=4)
    image("in/f32.tif", 80, 112, "f32", seed=5)
    want = [f"{stem}.k{k}.{ext}" for k in (2, 5)
            for stem, ext in (("out", "tif"), ("labels", "tif"), ("model", "json"))]
    for src, algorithm in (("u8.tif", "minibatch"), ("f32.tif", "lloyd")):
        against_one_process(f"{src[:-4]}_{algorithm}",
                            run_args(src, "2,5", algorithm, "--summary", "summary.json"),
                            want + ["summary.json"])


def case_fit():
    """fit on three 8-bit RGB files of different sizes writes one process's model."""
    os.mkdir("in")
    sizes = {"a.tif": (80, 112), "b.tif": (70, 75), "c.tif": (100, 100)}
    for i, (name, (h, w)) in enumerate(sizes.items()):
        image("in/" + name, h, w, "u8", seed=10 + i)
    against_one_process("fit", ["fit", *(f"../../in/{f}" for f in sizes), "-k", 4, "--seed", 3,
                                "--tile", TILE, "-o", "model.json", "-v"], ["model.json"])


def case_apply():
    """apply of a model to twenty small files (--out-dir, --labels-dir) writes the names and
    bytes of one process."""
    os.mkdir("in")
    names = []
    grids = ((1, 5), (5, 1), (1, 7), (7, 1), (5, 5), (5, 7), (7, 5))  # chunks down, across
    for i in range(20):
        down, across = grids[i % len(grids)]
        names.append(f"p{i:02}.tif")
        image("in/" + names[-1], TILE * down - 5 * i % 12, TILE * across - 7 * i % 12, "u8",
              seed=20 + i)
    one("in", "fit", *names, "-k", 4, "--seed", 3, "-o", "model.json", "-q")
    want = [f"{d}/{f}" for d in ("D", "LD") for f in names]
    against_one_process("apply", ["apply", "../../in/model.json",
                                  *(f"../../in/{f}" for f in names), "--out-dir", "D",
                                  "--labels-dir", "LD", "--tile", TILE, "-v"], want)


def foreign_chunks_in_trace(label, d, args, kind):
    """Runs chunkmeans ARGS (an 80 x 112 image of 35 chunks, with --trace t.json) in D as a job
    of 3 ranks: rank 0's trace must hold a KIND task for each of the 23 chunks the other ranks
    remapped."""
    os.makedirs(d)
    job(3, 1, d, *args)
    with open(f"{d}/t.json") as f:
        kinds = [e["name"] for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    foreign = chunks(80, 112) - len(range(0, chunks(80, 112), 3))
    expect(kinds.count(kind) == foreign,
           f"{label} in 3 ranks: {kinds.count(kind)} '{kind}' tasks in rank 0, not {foreign}")


def case_apply_one():
    """apply to one input shares its chunks among the ranks, as run does: one process's image
    and label map, gathered or written in parallel, and rank 0's trace receives or places the
    chunks of the other ranks. A bad input exits 3 with one message, from rank 0."""
    os.mkdir("in")
    image("in/u8.tif", 80, 112, "u8", seed=8)
    one("in", "fit", "u8.tif", "-k", 4, "--seed", 3, "-o", "model.json", "-q")
    with open("in/bad.tif", "w") as f:
        f.write("not an image\n")
    for mode in ("gather", "parallel"):
        args = ["apply", "../../in/model.json", "../../in/u8.tif", "out.tif", "--labels",
                "labels.tif", "--tile", TILE, "--mpi-write", mode, "-v"]
        against_one_process(mode, args, ["labels.tif", "out.tif"])
        foreign_chunks_in_trace("apply", f"trace/{mode}", args + ["--trace", "t.json"],
                                "place" if mode == "parallel" else "receive")
    os.makedirs("bad")
    r = job(3, 1, "bad", "apply", "../in/model.json", "../in/bad.tif", "out.tif", "-v", code=3)
    said = [l for l in r.err.splitlines() if "bad.tif" in l]
    expect(len(said) == 1 and "not a TIFF" in said[0], f"bad input: said {said}")
    expect(tree("bad") == [], f"bad input: left {tree('bad')}")


def case_parallel_write():
    """--mpi-write parallel, where every rank writes its own tiles at the offsets rank 0 gives,
    writes one process's bytes: 8-bit RGB with label map and model, -k 2,5 with a palette TIFF,
    float32 with lloyd; and a PNG, which cannot be placed and is gathered. Rank 0's trace shows
    that the TIFFs' chunks were placed there, not received."""
    os.mkdir("in")
    image("in/u8.tif", 80, 112, "u8", seed=6)
    image("in/f32.tif", 75, 70, "f32", seed=7)
    par = ("--mpi-write", "parallel")
    against_one_process("u8", run_args("u8.tif", 5, "minibatch", *par), RUN_OUTPUTS)
    want = [f"{stem}.k{k}.{ext}" for k in (2, 5)
            for stem, ext in (("out", "tif"), ("labels", "tif"), ("model", "json"))]
    against_one_process("palette", run_args("u8.tif", "2,5", "minibatch", "--format", "palette",
                                            *par), want)
    against_one_process("f32", run_args("f32.tif", 4, "lloyd", *par), RUN_OUTPUTS)
    png = run_args("u8.tif", 5, "minibatch", *par)
    png[png.index("out.tif")] = "out.png"
    against_one_process("png", png, ["labels.tif", "model.json", "out.png"])
    for name, kind in (("out.tif", "place"), ("out.png", "receive")):
        args = run_args("u8.tif", 5, "minibatch", *par, "--trace", "t.json")
        args[args.index("out.tif")] = name
        foreign_chunks_in_trace(name, f"trace/{name}", args, kind)


def case_negative():
    """The comparison can fail: with CM_TEST_MPI_ALLREDUCE=1 the exact reductions of lloyd on
    float32 go through MPI_Allreduce on doubles, whose sums in another order give other bytes
    than one process for at least one N."""
    os.mkdir("in")
    image("in/wide.tif", 80, 112, "wide", seed=3)
    args = run_args("wide.tif", 5, "lloyd")
    os.makedirs("ref/lloyd")
    one("ref/lloyd", *args)
    expect(tree("ref/lloyd") == RUN_OUTPUTS, f"one process wrote {tree('ref/lloyd')}")
    differ = {}
    for n in RANKS[1:]:
        d = f"n{n}/lloyd"
        os.makedirs(d)
        job(n, 1, d, *args, env={"CM_TEST_MPI_ALLREDUCE": "1"})
        expect(tree(d) == RUN_OUTPUTS, f"-n {n}, CM_TEST_MPI_ALLREDUCE=1: wrote {tree(d)}")
        differ[n] = differences("ref/lloyd", d)
    print(f"differs from one process, by N: {differ}")
    expect(any(differ.values()), "with MPI_Allreduce on doubles every N gives one process's "
           "bytes: the comparison of the other cases proves nothing on this input")


def case_fault():
    """A rank that fails mid-fit (CM_TEST_FAIL_RANK=1 of 3) ends the job within 10 s, non-zero,
    with its message, and leaves nothing beside the input: no output, no temporary file."""
    os.mkdir("job")
    image("job/in.tif", 80, 112, "f32", seed=6)
    r = job(3, 1, "job", "run", "in.tif", "out.tif", "-k", 5, "--seed", 3, "--algorithm",
            "lloyd", "--tile", TILE, "--labels", "labels.tif", "--model-out", "model.json", "-v",
            env={"CM_TEST_FAIL_RANK": "1"}, code=None, timeout=30)
    print(f"the job ended after {r.seconds:.1f} s, exit {r.code}")
    expect(r.seconds < 10, f"the job took {r.seconds:.1f} s to end after rank 1 failed")
    expect("test fault on rank 1" in r.err, f"no 'test fault on rank 1' in: {tail(r.err)}")
    expect(os.listdir("job") == ["in.tif"], f"left beside the input: {os.listdir('job')}")


CASES = {name[5:]: f for name, f in globals().items() if name.startswith("case_")}


def main():
    global CM, MPIRUN
    if len(sys.argv) != 4 or sys.argv[3] not in CASES:
        sys.exit("usage: mpi.py CHUNKMEANS MPIRUN CASE, CASE one of: " + " ".join(CASES))
    CM, MPIRUN, case = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    if not MPIRUN or not os.access(MPIRUN, os.X_OK):
        print(f"mpirun not found ({MPIRUN!r}): install Open MPI (openmpi-bin) to run the MPI "
              "tests; skipped")
        return 77
    work = tempfile.mkdtemp(prefix=f"cm-mpi-{case}.")
    os.chdir(work)
    try:
        check_launcher()
        CASES[case]()
    except Failed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    finally:
        os.chdir("/")
        if os.environ.get("MPI_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
