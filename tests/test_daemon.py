"""`digest run` as an operator runs it: a real daemon process firing on schedule."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.peers import FeedServer, SmtpServer
from tests.test_e2e import ACTIVE, make_project


def test_daemon_fires_at_the_scheduled_time_and_stops_cleanly(
        tmp_path: Path, feed_server: FeedServer, smtp_server: SmtpServer) -> None:
    config = make_project(tmp_path, feed_server, smtp_server.port)
    fire_at = datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(seconds=6)
    text = config.read_text()
    text = re.sub(r'time = "07:00"', f'time = "{fire_at:%H:%M:%S}"', text)
    config.write_text(text)

    proc = subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while len(smtp_server.received) < len(ACTIVE) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        assert {r for m in smtp_server.received for r in m.rcpt_tos} == ACTIVE
        assert len(smtp_server.received) == len(ACTIVE)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "next run" in out and "digest daemon stopped" in out
    assert "sent 3 of 3" in out
    assert "Traceback" not in err
