"""Regenerates the pictures in docs/ from a real `ript up sim` run: the operator panel with LIBERO
camera frames, a stored trial replayed, and the run's report page, in Debian's headless Chromium.

    python scripts/screenshots.py                       # the starter policy, -> docs/*.png
    python scripts/screenshots.py --checkpoint runs/sft/<time>/policy.pt --timeout 900

It starts the sim stack on ports of its own (127.0.0.1), waits until a camera frame and a few
stored trials are there, takes the pictures, and stops the stack. Needs `chromium` and
`chromium-driver` (scripts/apt-packages.txt).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ript.panel.address import parse_announcement

ROOT = Path(__file__).resolve().parent.parent


class Stack:
    """`ript up sim` in a process group of its own, its output kept and scanned for the panel URL."""

    def __init__(self, arguments: list[str], log: Path) -> None:
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ript.cli.main", "up", "sim", *arguments],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.url = self.token = ""
        self.started = time.monotonic()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.write(line)
            self.log.flush()
            found = parse_announcement(line)
            if found and not self.url:
                self.url, self.token = found
                print(f"panel up after {time.monotonic() - self.started:.0f} s: {self.url}", flush=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def browser(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        raise SystemExit("needs Debian's chromium and chromium-driver (scripts/apt-packages.txt)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def wait(check, timeout_s: float, what: str, stack: Stack) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except Exception:  # the element may not exist yet
            pass
        if stack.process.poll() is not None:
            raise SystemExit(
                f"ript up sim exited ({stack.process.returncode}) while waiting for {what}; see {stack.log.name}"
            )
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}; see {stack.log.name}")
        time.sleep(1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None, help="policy to run (default: the starter policy)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the pictures go (default docs/)")
    parser.add_argument("--trials", type=int, default=3, help="stored trials to wait for before the pictures")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the trials")
    parser.add_argument("--port", type=int, default=8765, help="panel port (127.0.0.1)")
    args = parser.parse_args()

    run_dir = ROOT / "runs" / "screenshots"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    # relative to the repository (the stack runs there), so the pictures show no machine's paths
    arguments = ["--set", f"panel_port={args.port}", "--set", f"run_dir={run_dir.relative_to(ROOT)}"]
    if args.checkpoint:
        arguments += ["--set", f"checkpoint={args.checkpoint}"]
    stack = Stack(arguments, run_dir.parent / "screenshots.log")
    args.out.mkdir(parents=True, exist_ok=True)
    page = None
    try:
        wait(lambda: stack.url, args.timeout, "the panel's address", stack)
        page = browser(1400, 1000)
        page.get(f"{stack.url}/#token={stack.token}")
        frame_loaded = "const i = document.getElementById('cam-agentview'); return i.complete && i.naturalWidth > 0;"
        wait(lambda: page.execute_script(frame_loaded), args.timeout, "a LIBERO camera frame", stack)
        print(f"camera frame in the panel after {time.monotonic() - stack.started:.0f} s", flush=True)
        dots = "return document.querySelectorAll('#contexts .dot[data-trial-id]').length"
        wait(lambda: page.execute_script(dots) >= args.trials, args.timeout, f"{args.trials} stored trials", stack)
        print(f"{args.trials} trials after {time.monotonic() - stack.started:.0f} s", flush=True)
        time.sleep(2.0)  # a fresh frame, the plot redrawn
        page.save_screenshot(str(args.out / "operator_panel.png"))

        # the newest trial (a policy node's very first trial may predate the first camera frame)
        page.find_elements("css selector", "#contexts .dot[data-trial-id]")[-1].click()
        replay_frame = (
            "const i = document.getElementById('replay-frame'); return i && i.complete && i.naturalWidth > 0;"
        )
        wait(lambda: page.execute_script(replay_frame), 60, "the replayed trial's frames", stack)
        page.execute_script("document.getElementById('replay').scrollIntoView()")
        time.sleep(1.0)
        page.save_screenshot(str(args.out / "panel_replay.png"))
        page.find_element("id", "replay-close").click()

        panel_tab = page.current_window_handle
        page.find_element("id", "btn-report").click()
        wait(lambda: len(page.window_handles) == 2, 60, "the report's tab", stack)
        page.switch_to.window(next(h for h in page.window_handles if h != panel_tab))
        wait(lambda: page.title.startswith("ript run"), 120, "the report page", stack)
        page.save_screenshot(str(args.out / "run_report.png"))
    finally:
        if page is not None:
            page.quit()
        stack.stop()
    print(f"wrote {', '.join(str(args.out / n) for n in ('operator_panel.png', 'panel_replay.png', 'run_report.png'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
