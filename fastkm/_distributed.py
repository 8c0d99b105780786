"""A batch of files on a dask.distributed cluster: ``fastkm quantize ... --scheduler ADDRESS``.

The command line imports this module only when ``--scheduler`` is given, so a local
run never loads Dask.  Each file is one task running the same function as a local
batch, so the outputs are the same bytes; the workers read the inputs and write the
outputs, so both must be on storage the workers see under the same paths.
"""

from ._limits import FastkmError

# Seconds to wait for the scheduler before giving up with a one-line error.
CONNECT_TIMEOUT = 10


def run_on_cluster(address, work, jobs):
    """Connect to the scheduler at ``address`` now and return the jobs' outcomes.

    work    a module-level function the workers can import (fastkm installed there)
    jobs    [(index, args)]: work(*args) runs as one task each; args[0] is the input
            path, named when its worker dies
    returns a generator of (index, work's value), in the order the tasks finish (an
            exception work raises is raised again here; a task whose worker died
            gives a FastkmError); it closes the connection when done or closed
    Raises FastkmError when Dask is not installed or the scheduler cannot be reached.
    """
    try:
        from distributed import Client
    except ImportError:
        raise FastkmError("--scheduler needs Dask: pip install 'fastkm[dask]'") from None
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise FastkmError(f"cannot reach the Dask scheduler at {address} ({error})") from None
    return _outcomes(client, work, jobs)


def _outcomes(client, work, jobs):
    from distributed import KilledWorker, as_completed

    try:
        # pure=False: every task writes a file, so none may stand in for another.
        futures = {client.submit(work, *args, pure=False): (index, args) for index, args in jobs}
        for future in as_completed(futures, loop=client.loop):
            index, args = futures[future]
            try:
                outcome = future.result()  # an exception work raised is raised here again
            except KilledWorker as error:
                outcome = FastkmError(f"{args[0]}: the worker running it died, out of memory perhaps ({error})")
            yield index, outcome
    finally:
        client.close()
