"""A spot VM's preemption notice (#17.4): the real tiny-model trainer, pointed at a local server that
speaks GCP's metadata protocol for `instance/preempted` (FALSE, then TRUE on the long poll once
training is under way), checkpoints at once and stops cleanly, losing at most the step under way."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import run_cli
from zelda_tui.backends.trainer.spot_notice import URL_ENV
from zelda_tui.core import runs

from .conftest import make_workspace, wait_for
from .test_runs import finished

PATH = "/computeMetadata/v1/instance/preempted"


def metadata_server(runs_root: Path, notice_at_step: int) -> ThreadingHTTPServer:
    """FALSE at once; a wait_for_change request is answered TRUE once a run logged `notice_at_step`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if not self.path.startswith(PATH) or self.headers.get("Metadata-Flavor") != "Google":
                self.send_error(404)
                return
            body = b"FALSE"
            if "wait_for_change=true" in self.path:
                while not any(m.get("event") == "train" and m.get("step", 0) >= notice_at_step
                              for d in runs_root.glob("*") for m in runs.read_metrics(d)):
                    time.sleep(0.05)
                body = b"TRUE"
                self.server.noticed.append(time.time())  # type: ignore[attr-defined]
            self.send_response(200)
            self.send_header("Metadata-Flavor", "Google")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.noticed = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_preemption_notice_checkpoints_at_once_and_stops(tmp_path: Path, tiny_model: Path):
    cfg = make_workspace(tmp_path / "ws", tiny_model, max_steps=200, every=100)  # no checkpoint of its own before 100
    server = metadata_server(tmp_path / "ws" / "runs", notice_at_step=2)
    try:
        res = run_cli("train", "start", "--phase", "0", "--json", "--config", str(cfg),
                      env={URL_ENV: f"http://127.0.0.1:{server.server_address[1]}{PATH}"})
        assert res.returncode == 0, res.stderr
        run_dir = Path(json.loads(res.stdout)["run_dir"])
        status = wait_for(lambda: finished(run_dir))
        log = (run_dir / runs.TRAIN_LOG).read_text()
        assert status.state == "stopped", log[-3000:]
        assert server.noticed and "GCP preemption notice: SIGTERM to pid" in log
        steps = sorted(int(p.name.split("-")[1]) for p in (run_dir / runs.CHECKPOINTS).glob("checkpoint-*"))
        assert steps and 2 <= steps[-1] <= 5, (steps, log[-2000:])  # right after the notice, not at step 100
        assert status.last_checkpoint and status.last_checkpoint.endswith(f"checkpoint-{steps[-1]}")
    finally:
        server.shutdown()
