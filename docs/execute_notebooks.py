"""Execute the tutorial notebooks in place, so that the site shows their
outputs and figures (mkdocs-jupyter renders them with `execute: false`).

    .venv/bin/python docs/execute_notebooks.py            # all notebooks
    .venv/bin/python docs/execute_notebooks.py 03 07      # those whose name starts so
    .venv/bin/python docs/execute_notebooks.py --stale    # only the stale ones
    .venv/bin/python docs/execute_notebooks.py --check    # exit 1 if any is stale

Each notebook runs top to bottom in a fresh kernel of the interpreter that
runs this script (the kernelspec "python3" of .venv starts `python`, which
jupyter_client replaces by this interpreter), with notebooks/ as its working
directory and the quick switch `KERAS_TBPTT_QUICK` off: what is stored is
the full run that the prose describes and the page shows, never the reduced
copy that the test suite executes. Each tutorial is designed so that its
full run takes minutes on 2 CPU cores; `--budget S` fails a notebook whose
run has not finished after S seconds (writing nothing).

The hash of the notebook's code cells is written to the notebook's metadata
(`keras_tbptt.code_sha256`) with the outputs, with `"quick": false` and the
run's seconds; tests/test_notebooks.py checks that the hash still matches
the code, so a notebook whose code changed after it was executed fails the
tests until this script is run again. Only code counts: editing Markdown
cells or tags does not make a notebook stale.
"""

import argparse
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
METADATA_KEY = "keras_tbptt"
TIMEOUT = 1800  # seconds per cell
# Noise on the site, dropped from the stored streams: TensorFlow's C++
# start-up log (absl, oneDNN) and its tf.function retracing warnings, tqdm's
# missing-widgets warning and Dask's shutdown warnings.
NOISE = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\).*"
                   r"|[IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\] .*"
                   r"|.*TqdmWarning: IProgress not found.*"
                   r"|  from \.autonotebook import tqdm as notebook_tqdm"
                   r"|[\d-]+ [\d:,]+ - distributed\.\S+ - WARNING - .*"
                   r"|WARNING:tensorflow:\d+ out of the last \d+ calls to .* retracing.*")
# A warning raised in a cell names the kernel's temporary file of that cell
# ("/tmp/ipykernel_123/456.py:7: UserWarning: ...") and echoes the line;
# the reader sees the warning itself.
CELL_FILE = re.compile(r"^\S*ipykernel_\d+/\d+\.py:\d+: (?=\w+(Warning|Error))", re.MULTILINE)


def code_hash(notebook):
    """SHA-256 of the notebook's code cells, in order (sources only)."""
    sources = [cell["source"] for cell in notebook["cells"] if cell["cell_type"] == "code"]
    sources = ["".join(s) if isinstance(s, list) else s for s in sources]
    return hashlib.sha256(json.dumps(sources).encode()).hexdigest()


def stored_hash(notebook):
    return notebook["metadata"].get(METADATA_KEY, {}).get("code_sha256")


def is_fresh(notebook):
    return stored_hash(notebook) == code_hash(notebook)


def tidy(notebook):
    """Stored outputs as a notebook front end shows them: consecutive stream
    outputs merged, progress bars (redrawn with \\r) at their last state,
    the NOISE lines dropped (the code's hash is unchanged)."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            if (output.output_type == "stream" and outputs
                    and outputs[-1].output_type == "stream" and outputs[-1].name == output.name):
                outputs[-1].text += output.text
            else:
                outputs.append(output)
        kept = []
        for output in outputs:
            if output.output_type == "stream":
                lines = [line.rsplit("\r", 1)[-1] for line in output.text.split("\n")]
                lines = [line for line in lines if not NOISE.fullmatch(line)]
                output.text = _without_cell_files("\n".join(lines))
                if not output.text.strip():
                    continue
            kept.append(output)
        cell.outputs = kept
    return notebook


def _without_cell_files(text):
    """Warnings as Jupyter users read them: without the kernel's temporary
    file name in front, and without the echoed source line under them."""
    lines, kept, skip_echo = text.split("\n"), [], False
    for line in lines:
        if skip_echo and line.startswith("  "):
            skip_echo = False
            continue
        skip_echo = False
        cleaned = CELL_FILE.sub("", line)
        if cleaned != line:
            skip_echo = True
        kept.append(cleaned)
    return "\n".join(kept)


def execute(path, limit=None):
    """Run one notebook's full run and write it back with its outputs;
    returns seconds. With `limit`, raises TimeoutError (writing nothing)
    after that many seconds."""
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    env = dict(os.environ)
    env.pop("KERAS_TBPTT_QUICK", None)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # inherited by the kernel
    start = time.perf_counter()
    try:
        client = nbclient.NotebookClient(
            notebook,
            timeout=max(1, int(min(TIMEOUT, limit))) if limit else TIMEOUT,
            kernel_name="python3",
            record_timing=False,  # no timestamps in the stored cells
            resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
        )
        deadline = time.monotonic() + limit if limit else None

        async def run_cell(cell, index, **kwargs):  # the whole notebook's time limit
            if deadline and time.monotonic() > deadline:
                raise TimeoutError(f"{path.name}: not finished after {limit} s")
            return await base_cell(cell, index, **kwargs)

        base_cell = client.async_execute_cell
        client.async_execute_cell = run_cell
        client.execute()  # raises CellExecutionError on the first failing cell
    except nbclient.exceptions.CellTimeoutError as error:
        raise TimeoutError(f"{path.name}: a cell ran past {limit} s") from error
    finally:
        os.environ.clear()
        os.environ.update(saved)
    seconds = time.perf_counter() - start
    notebook.metadata[METADATA_KEY] = {
        "code_sha256": code_hash(notebook),
        "quick": False,
        "seconds": round(seconds),
        "executed_by": "docs/execute_notebooks.py",
    }
    tidy(notebook)
    # nbclient records the kernel's language_info; keep the stored metadata short.
    notebook.metadata["language_info"] = {"name": "python"}
    nbformat.write(notebook, path)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebooks whose file name starts so (default: all)")
    parser.add_argument("--stale", action="store_true", help="only notebooks whose code changed")
    parser.add_argument("--check", action="store_true", help="execute nothing; exit 1 if any is stale")
    parser.add_argument("--budget", type=int, metavar="S",
                        help="fail a notebook whose run has not finished after S seconds")
    args = parser.parse_args(argv)

    paths = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    if args.names:
        paths = [p for p in paths if any(p.name.startswith(n) for n in args.names)]
        if not paths:
            parser.error(f"no notebook in {NOTEBOOK_DIR} starts with {args.names}")
    if args.check or args.stale:
        stale = [p for p in paths if not is_fresh(json.loads(p.read_text()))]
        if args.check:
            for p in stale:
                print(f"stale: {p.name} (run: python docs/execute_notebooks.py {p.name[:2]})")
            print(f"{len(paths) - len(stale)} of {len(paths)} notebooks are fresh")
            return 1 if stale else 0
        paths = stale
    total = 0.0
    for path in paths:
        print(f"executing {path.name} ...", flush=True)
        seconds = execute(path, args.budget)
        total += seconds
        print(f"  {path.name}: {seconds:.0f} s", flush=True)
    print(f"{len(paths)} notebooks executed in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
