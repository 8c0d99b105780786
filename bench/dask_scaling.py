"""fastkm.dask on a LocalCluster of 1 and of 2 worker processes, against fastkm.quantize.

    python bench/dask_scaling.py [IMAGE] [--tile 3] [-k 16 64] [--chunk 2048] [--rounds 3]
                                 [--markdown bench/results/dask_scaling.md]

The mosaic is --tile x --tile copies of the photo (the 12 MP ../shared photo when
present, else the bundled 3 MP one), every tile mirrored or shifted in brightness so
that no two are the same pixels: --tile 3 on the 12 MP photo is 110 MP.  It is held
in the workers' memory (persisted) in chunks of --chunk x --chunk pixels, so the
times are the quantizer's, not a storage system's.

Each worker is one process with one thread and NUMBA_NUM_THREADS=1: one core each.
Times: ``fit`` is fastkm.dask.quantize (sample, fit, passes: palette and MSE known),
``labels`` is computing the lazy labels on the workers (kept there, as a store
would).  The in-memory rows run fastkm.quantize in this process on 1 and 2 threads,
on the same pixels and seed, for the quality and time reference.  Both clusters stay
up side by side and each of --rounds rounds runs every configuration once, so that
load from other users of the machine falls on all of them alike, and each run waits
(up to 3 minutes) until other programs leave the cores idle; the table shows each
configuration's fastest round.
Needs the fastkm[dask] extra.
"""

import argparse
import contextlib
import os
import platform
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numba
import numpy as np

import fastkm
import fastkm.dask
from fastkm.io import read_image

ROOT = Path(__file__).resolve().parent.parent
LARGE_PHOTO = ROOT.parent / "shared" / "images" / "large" / "012mp-bus.jpg"
BUNDLED_PHOTO = ROOT / "sample_images" / "bus-3mp.jpg"


def build_mosaic(photo, tile):
    """(tile*H, tile*W, C) uint8: tiles alternately mirrored, each a little brighter or darker."""
    rows = []
    for i in range(tile):
        row = []
        for j in range(tile):
            view = photo[::-1] if i % 2 else photo
            view = view[:, ::-1] if j % 2 else view
            shift = (i * tile + j) % 5 - 2  # -2..2 grey levels: no two tiles the same colours
            row.append(np.clip(view.astype(np.int16) + shift, 0, 255).astype(np.uint8))
        rows.append(np.concatenate(row, axis=1))
    return np.ascontiguousarray(np.concatenate(rows, axis=0))


def busy_cores(seconds=0.5):
    """Cores busy over the next ``seconds`` (Linux /proc/stat), or 0 where unknown."""
    def ticks():
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait

    try:
        total_before, idle_before = ticks()
        time.sleep(seconds)
        total_after, idle_after = ticks()
    except OSError:
        return 0.0
    busy = 1 - (idle_after - idle_before) / max(1, total_after - total_before)
    return busy * os.cpu_count()


def wait_until_idle(max_seconds=180, busy_limit=0.6):
    """Wait until other programs leave the cores idle (this shared machine's load comes
    and goes); returns whether they did before max_seconds.

    The idle clusters and this process keep about 0.25 of a core busy (heartbeats);
    another program's computation keeps a whole one.
    """
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        if busy_cores() <= busy_limit:
            return True
    return False


def time_in_memory(mosaic, n_colors, n_threads):
    """(seconds, mse) of fastkm.quantize in this process on n_threads."""
    numba.set_num_threads(n_threads)
    try:
        start = time.perf_counter()
        result = fastkm.quantize(mosaic, n_colors)
        return time.perf_counter() - start, result.mse
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def time_on_cluster(client, array, n_colors):
    """(fit seconds, labels seconds, mse) of fastkm.dask.quantize on the client's cluster."""
    from distributed import wait

    with client.as_current():
        start = time.perf_counter()
        result = fastkm.dask.quantize(array, n_colors)
        fitted = time.perf_counter()
        labels = result.labels.persist()
        wait(labels)
        done = time.perf_counter()
    del labels
    return fitted - start, done - fitted, result.mse


def start_cluster(stack, mosaic, chunk, n_workers):
    """A client of a fresh LocalCluster of n_workers holding the mosaic, kernels loaded."""
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    # The worker processes import this script, and with it numba, before LocalCluster's
    # env= would reach them: NUMBA_NUM_THREADS goes in the environment they start with.
    # The nanny writes that into this process's os.environ too, where numba's next
    # compile would refuse the changed value: it is restored once the workers run.
    before = os.environ.get("NUMBA_NUM_THREADS")
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ.NUMBA_NUM_THREADS": "1"}):
            cluster = stack.enter_context(LocalCluster(
                n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                memory_limit=None,
            ))
    finally:
        if before is None:
            os.environ.pop("NUMBA_NUM_THREADS", None)
        else:
            os.environ["NUMBA_NUM_THREADS"] = before
    client = stack.enter_context(Client(cluster, set_as_default=False))
    assert set(client.run(numba.get_num_threads).values()) == {1}
    with client.as_current():
        array = client.persist(da.from_array(mosaic, chunks=(chunk, chunk, mosaic.shape[2])))
        wait(array)
        small = da.from_array(mosaic[:512, :512], chunks=(256, 256, 3))
        fastkm.dask.quantize(small, 8, sample_size=10_000).labels.compute()
    return client, array


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", type=Path, default=LARGE_PHOTO if LARGE_PHOTO.exists() else BUNDLED_PHOTO)
    parser.add_argument("--tile", type=int, default=3)
    parser.add_argument("-k", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    mosaic = build_mosaic(read_image(args.image), args.tile)
    height, width = mosaic.shape[:2]
    n_chunks = -(-height // args.chunk) * -(-width // args.chunk)
    fastkm.quantize(mosaic[:256, :256], 8)  # load the cached kernels here too
    # Handing the mosaic to the workers once is set-up, not the benchmark: its warning is noise.
    warnings.filterwarnings("ignore", message="Sending large graph")
    memory = {}  # (threads, k) -> [(seconds, mse)], one per round
    on_dask = {}  # (workers, k) -> [(fit seconds, labels seconds, mse)], one per round
    with contextlib.ExitStack() as stack:
        clusters = {n_workers: start_cluster(stack, mosaic, args.chunk, n_workers) for n_workers in (1, 2)}
        # Every round runs every configuration once, so that load from other users of
        # the machine, which comes and goes, falls on all of them alike.
        n_busy = 0  # runs started while other programs kept the cores busy
        for _ in range(args.rounds):
            for n_colors in args.k:
                for n_threads in (1, 2):
                    n_busy += not wait_until_idle()
                    memory.setdefault((n_threads, n_colors), []).append(time_in_memory(mosaic, n_colors, n_threads))
                for n_workers, (client, array) in clusters.items():
                    n_busy += not wait_until_idle()
                    on_dask.setdefault((n_workers, n_colors), []).append(time_on_cluster(client, array, n_colors))
    # The fastest round of each configuration.
    memory = {key: min(rounds) for key, rounds in memory.items()}
    on_dask = {key: min(rounds, key=lambda run: run[0] + run[1]) for key, rounds in on_dask.items()}

    lines = [
        (
            f"Mosaic: {args.tile}x{args.tile} tiles of {args.image.name} = {width}x{height} "
            f"({height * width / 1e6:.0f} MP, {mosaic.nbytes / 1e6:.0f} MB), {n_chunks} chunks of "
            f"{args.chunk}x{args.chunk} held in the workers' memory; {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores (1-minute load average {load_before:.1f} before the run, "
            f"{os.getloadavg()[0]:.1f} after; {n_busy} of {args.rounds * len(args.k) * 4} runs started while other "
            f"programs kept the cores busy); seed 0; fastest of {args.rounds} interleaved rounds; "
            f"finished {datetime.now(timezone.utc).isoformat(timespec='seconds')}."
        ),
        (
            "Workers: one process, one thread and NUMBA_NUM_THREADS=1 each. fit = fastkm.dask.quantize "
            "(sample, fit, passes); labels = computing the lazy labels on the workers. "
            "MSE per channel; ratio = MSE over fastkm.quantize's on the same pixels."
        ),
        "",
        "| run | k | fit s | labels s | total s | speed-up over 1 worker | MSE | MSE ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n_colors in args.k:
        one_worker_total = sum(on_dask[1, n_colors][:2])
        memory_mse = memory[2, n_colors][1]
        for n_threads in (1, 2):
            seconds, mse = memory[n_threads, n_colors]
            lines.append(
                f"| fastkm.quantize in memory, {n_threads} thread{'s' * (n_threads > 1)} | {n_colors} | | | "
                f"{seconds:.2f} | | {mse:.2f} | 1.000 |"
            )
        for n_workers in (1, 2):
            fit_s, labels_s, mse = on_dask[n_workers, n_colors]
            lines.append(
                f"| fastkm.dask, {n_workers} worker{'s' * (n_workers > 1)} | {n_colors} | {fit_s:.2f} | "
                f"{labels_s:.2f} | {fit_s + labels_s:.2f} | {one_worker_total / (fit_s + labels_s):.2f} | "
                f"{mse:.2f} | {mse / memory_mse:.3f} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
