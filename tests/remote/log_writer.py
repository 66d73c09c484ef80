"""A stand-in remote job for the tail tests: appends numbered lines to train.log (each line in
two writes, so readers see partial lines), a metrics event every 10 lines, and keeps
status.json current like the trainer does. Usage: log_writer.py RUN_DIR N_LINES LINES_PER_S"""

import json
import os
import sys
import time

def status(run_dir: str, state: str, step: int) -> None:
    tmp = os.path.join(run_dir, ".status.tmp")
    with open(tmp, "w") as fh:
        json.dump({"state": state, "pid": os.getpid(), "step": step, "heartbeat": time.time()}, fh)
    os.replace(tmp, os.path.join(run_dir, "status.json"))


def expected(i: int) -> str:
    return f"line {i:06d} " + "x" * (i % 37) + " ✓"


if __name__ == "__main__":
    run_dir, n, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    status(run_dir, "running", 0)
    with open(os.path.join(run_dir, "train.log"), "a", encoding="utf-8") as log, \
            open(os.path.join(run_dir, "metrics.jsonl"), "a", encoding="utf-8") as metrics:
        for i in range(n):
            line = expected(i) + "\n"
            log.write(line[:7])
            log.flush()
            time.sleep(0.5 / rate)
            log.write(line[7:])
            log.flush()
            if i % 10 == 9:
                metrics.write(json.dumps({"t": time.time(), "event": "train", "step": i // 10 + 1, "loss": 1.0 / (i + 1)}) + "\n")
                metrics.flush()
                status(run_dir, "running", i // 10 + 1)
            time.sleep(0.5 / rate)
    status(run_dir, "completed", n // 10)
