"""A refused upload costs the web process no memory: the product under gunicorn, a real login, and
multipart bodies streamed from files on disk (the client holds none of it), measured by the
worker's peak resident memory (VmHWM). Needs no PostgreSQL: a SQLite file of its own."""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MB = 1024 * 1024
MOST_GROWTH_MB = 10

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads peak memory from Linux's /proc"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sparse_pdf(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that starts like a PDF; sparse, so it costs no disk either."""
    with path.open("wb") as file:
        file.write(b"%PDF-1.4\n")
        file.truncate(size)
    return path


class Multipart:
    """A multipart/form-data body read from disk as it is sent; its length is known up front, so
    requests sends a Content-Length instead of chunks."""

    def __init__(self, fields: dict[str, str], files: list[Path]) -> None:
        boundary = f"----upload-limits-{uuid.uuid4().hex}"
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self.parts: list[bytes | Path] = []
        for name, value in fields.items():
            self.parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            )
        for path in files:
            self.parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="pdfs"; filename="{path.name}"\r\n'
                "Content-Type: application/pdf\r\n\r\n".encode()
            )
            self.parts += [path, b"\r\n"]
        self.parts.append(f"--{boundary}--\r\n".encode())

    def __len__(self) -> int:
        return sum(p.stat().st_size if isinstance(p, Path) else len(p) for p in self.parts)

    def __iter__(self) -> Iterator[bytes]:
        for part in self.parts:
            if isinstance(part, bytes):
                yield part
                continue
            with part.open("rb") as file:
                while chunk := file.read(256 * 1024):
                    yield chunk


class Server:
    def __init__(self, tmp_path: Path) -> None:
        self.var = tmp_path / "var"
        self.media = tmp_path / "media"
        self.uploads = tmp_path / "uploads"
        self.log = tmp_path / "gunicorn.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = uuid.uuid4().hex
        self.env = {
            **os.environ,
            "VAR_DIR": str(self.var),
            "DATABASE_URL": f"sqlite:///{self.var / 'db.sqlite3'}",
            "CELERY_BROKER_URL": "filesystem://",
            "RATE_LIMIT_URL": f"sqlite:///{self.var / 'ratelimit.sqlite3'}",
            "MEDIA_ROOT": str(self.media),
            "FILE_UPLOAD_TEMP_DIR": str(self.uploads),
            "DJANGO_SETTINGS_MODULE": "config.settings",  # the product as deployed, not the tests' settings
            "DJANGO_DEBUG": "false",
            "DJANGO_HTTPS": "false",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SUPERUSER_USERNAME": "admin",
            "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
            "DJANGO_SUPERUSER_PASSWORD": self.password,
        }
        self.process: subprocess.Popen | None = None

    def prepare(self) -> None:
        manage = [sys.executable, "manage.py"]
        for command in (["migrate", "--no-input"], ["createsuperuser", "--no-input"]):
            subprocess.run(
                [*manage, *command], cwd=ROOT, env=self.env, check=True, capture_output=True, timeout=120
            )

    def start(self) -> None:
        command = [str(BIN / "gunicorn"), "config.wsgi", "-w", "1", "-b", f"127.0.0.1:{self.port}"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn stopped:\n{self.log.read_text()}")
            try:
                if requests.get(f"{self.url}/admin/login/", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within 30 s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def worker_pid(self) -> int:
        master = self.process.pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        assert len(children) == 1, f"gunicorn -w 1 has the children {children}"
        return int(children[0])

    def invoice_rows(self) -> int:
        with sqlite3.connect(self.var / "db.sqlite3") as db:
            return db.execute("SELECT count(*) FROM invoices_invoice").fetchone()[0]

    def kept_files(self) -> list[Path]:
        return [p for folder in (self.media, self.uploads) for p in folder.rglob("*") if p.is_file()]


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1)) / 1024


def csrf_token(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


@pytest.fixture
def server(tmp_path, request) -> Server:
    running = Server(tmp_path)
    request.addfinalizer(running.stop)
    running.prepare()
    running.start()
    return running


@pytest.fixture
def staff(server) -> requests.Session:
    session = requests.Session()
    login = f"{server.url}/admin/login/"
    token = csrf_token(session.get(login, timeout=10).text)
    answer = session.post(
        login,
        data={
            "username": "admin",
            "password": server.password,
            "csrfmiddlewaretoken": token,
            "next": "/admin/",
        },
        timeout=10,
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text
    return session


def test_a_refused_upload_leaves_the_web_process_memory_and_disk_as_they_were(server, staff, tmp_path):
    add = f"{server.url}/admin/invoices/invoice/add/?provider=qonto"
    page = staff.get(add, timeout=10)
    assert 'name="pdfs"' in page.text
    fields = {"csrfmiddlewaretoken": csrf_token(page.text), "_send": "1"}
    files = tmp_path / "files"
    files.mkdir()
    pdf_6 = sparse_pdf(files / "scan-6mb.pdf", 6 * MB)
    pdf_30 = [sparse_pdf(files / f"scan-30mb-{n}.pdf", 30 * MB) for n in range(3)]
    pdf_100 = sparse_pdf(files / "scan-100mb.pdf", 100 * MB)
    worker = server.worker_pid()

    def post(body) -> tuple[requests.Response, float]:
        before = peak_rss_mb(worker)
        headers = {"Referer": add}
        if isinstance(body, Multipart):
            headers["Content-Type"] = body.content_type
        answer = staff.post(add, data=body, headers=headers, timeout=60)
        # The request's temporary files go when gunicorn closes the response, just after sending it.
        deadline = time.monotonic() + 5
        while server.kept_files() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.kept_files() == []
        assert server.invoice_rows() == 0
        return answer, peak_rss_mb(worker) - before

    # Once first, so that what a first request loads (templates, forms) is not counted below.
    answer, _ = post(Multipart(fields, [pdf_6]))
    assert "scan-6mb.pdf is 6.0 MB; the providers accept at most 5 MB per PDF." in answer.text
    start = peak_rss_mb(worker)

    figures = {}
    for label, chosen in (
        ("one 30 MB PDF", pdf_30[:1]),
        ("three 30 MB PDFs", pdf_30),
        ("one 100 MB PDF", [pdf_100]),
    ):
        answer, figures[label] = post(Multipart(fields, chosen))
        assert answer.status_code == 200
        for path in chosen:
            size = path.stat().st_size // MB
            assert f"{path.name} is {size}.0 MB; the providers accept at most 5 MB per PDF." in answer.text

    body = Multipart(fields, [pdf_100, pdf_30[0]])
    answer, figures["130 MB at once (413)"] = post(body)
    assert answer.status_code == 413
    assert (
        f"This upload is {len(body) / MB:.1f} MB; at most 105 MB can be sent at once and each PDF may be"
        f' at most 5 MB. <a href="{add}">Go back</a> and choose fewer or smaller files.'
    ) in answer.text

    answer, figures["100 MB without Content-Length (411)"] = post(iter(Multipart(fields, [pdf_100])))
    assert answer.status_code == 411

    assert server.worker_pid() == worker, "the worker was restarted: its peak memory says nothing"
    print(f"peak RSS of the web worker: {start:.1f} MB before, {peak_rss_mb(worker):.1f} MB after")
    for label, growth in figures.items():
        print(f"peak RSS growth of the web worker for a refused upload, {label}: {growth:.1f} MB")
    assert {label: growth for label, growth in figures.items() if growth >= MOST_GROWTH_MB} == {}
