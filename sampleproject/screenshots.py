"""Screenshots of the demo for the docs: ``python -m sampleproject.screenshots``.

Serves the sample project under daphne on a free loopback port with a throwaway database,
signs alice and bob in with headless Chromium, uses a few widgets so the page has something
to show, and writes ``docs/img/demo-desktop.png`` (1280x800) and ``docs/img/demo-phone.png``
(390x844). Re-run it after changing the demo's look. ``CHROMIUM`` names the browser binary
(default ``/usr/bin/chromium``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    """Return once ``port`` accepts connections; fail if ``process`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)  # a readiness poll's interval, not a synchronisation
    raise TimeoutError(f"daphne did not listen on {port} within {timeout} s")


@contextmanager
def demo_server() -> Iterator[str]:
    """The sample project under daphne, on its own database; yields its base URL."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "sampleproject.settings",
            "DEMO_DB": f"{tmp}/db.sqlite3",
        }
        env.pop("REDIS_URL", None)
        for command in (["migrate", "-v0"], ["demo_accounts"]):
            subprocess.run(
                [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True
            )
        port = free_port()
        args = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "sampleproject.asgi:application",
        ]
        process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_port(port, process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def sign_in(context, base: str, username: str, path: str = "/"):
    """A page of ``context`` signed in as ``username`` and open on ``path``, its socket open."""
    from playwright.sync_api import expect

    page = context.new_page()
    page.goto(f"{base}/login/?next={path}")
    page.fill("#id_username", username)
    page.fill("#id_password", f"{username}-demo-pass")
    page.click("button[type=submit]")
    page.wait_for_url(base + path)
    expect(page.locator("#state")).to_have_text("open")
    return page


def take(out: Path) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    desktop_path, phone_path = out / "demo-desktop.png", out / "demo-phone.png"
    with demo_server() as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        alice_context = browser.new_context(viewport=DESKTOP)
        bob_context = browser.new_context(
            viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        alice = sign_in(alice_context, base, "alice")
        bob = sign_in(bob_context, base, "bob")
        expect(alice.locator("#online")).to_have_text("alice, bob")

        bob.fill("#chat-text", "Hi alice, I see you online")
        bob.click("#chat-form button")
        alice.fill("#chat-text", "Hello bob! Try the notes page")
        alice.click("#chat-form button")
        for page in (alice, bob):
            expect(page.locator("#chat-log li")).to_have_count(2)
        alice.click("#add-form button")
        expect(alice.locator("#add-result")).to_have_text("5")
        alice.click("#staff-only")
        expect(alice.locator("#staff-error")).to_be_visible()
        alice.click("#start-progress")
        expect(alice.locator("#progress-text")).to_have_text("10 / 10", timeout=30000)
        alice.click("#notify-tabs")
        expect(alice.locator(".fc-toast")).to_be_visible()
        alice.evaluate("window.scrollTo(0, 0)")
        alice.screenshot(path=str(desktop_path))

        bob.click("#bad-arguments")
        expect(bob.locator("#bad-error")).to_be_visible()
        bob.evaluate("window.scrollTo(0, 0)")
        bob.screenshot(path=str(phone_path))
        browser.close()
    return [desktop_path, phone_path]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="folder for the PNGs")
    for path in take(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
