"""Upload limits: an oversized PDF is refused by its size, unread; too many files and a request
that is too large as a whole are refused plainly; a refusal leaves no invoice and no file."""

from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler
from django.test import RequestFactory
from django.urls import reverse

from config.middleware import RequestSizeLimitMiddleware
from invoices.models import Invoice
from tests.factories import CustomerFactory
from tests.invoices.helpers import pdf_bytes
from tests.invoices.test_admin_create import upload

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:invoices_invoice_add")
QONTO_URL = ADD_URL + "?provider=qonto"
MB = 1024 * 1024
HERE = "tests.invoices.test_upload_limits"


class GuardedUpload(TemporaryUploadedFile):
    """An upload whose content fails the test when it is read while over the guard's size."""

    def _guard(self) -> None:
        if self.size > getattr(settings, "TEST_UPLOAD_READ_FAILS_OVER", settings.MAX_PDF_BYTES):
            pytest.fail(f"the content of {self.name} ({self.size} bytes) was read")

    def read(self, *args):
        self._guard()
        return self.file.read(*args)

    def readline(self, *args):
        self._guard()
        return self.file.readline(*args)

    def readlines(self, *args):
        self._guard()
        return self.file.readlines(*args)


class GuardedUploadHandler(TemporaryFileUploadHandler):
    def new_file(self, *args, **kwargs) -> None:
        FileUploadHandler.new_file(self, *args, **kwargs)
        self.file = GuardedUpload(self.file_name, self.content_type, 0, self.charset, self.content_type_extra)


class RefusingUploadHandler(FileUploadHandler):
    """Fails the test as soon as Django starts parsing a multipart body."""

    def handle_raw_input(self, *args, **kwargs):
        pytest.fail("the request body was parsed")

    def receive_data_chunk(self, raw_data, start):
        pytest.fail("the request body was parsed")

    def file_complete(self, file_size):
        pytest.fail("the request body was parsed")


@pytest.fixture
def upload_dir(settings, tmp_path) -> Path:
    """Uploads over FILE_UPLOAD_MAX_MEMORY_SIZE wait in this folder, through the guarded handler."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    settings.FILE_UPLOAD_HANDLERS = [f"{HERE}.GuardedUploadHandler"]
    return folder


def big_pdf(size: int) -> bytes:
    """A real PDF padded with a comment to ``size`` bytes: only its size is wrong."""
    head = pdf_bytes() + b"\n%"
    return head + b"x" * (size - len(head))


def assert_nothing_kept(upload_dir: Path) -> None:
    assert not Invoice.objects.exists()
    assert [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()] == []
    assert list(upload_dir.iterdir()) == []


def test_an_oversized_pdf_is_refused_unread_in_the_mijnklantportaal_form(admin_client, upload_dir):
    response = upload(admin_client, CustomerFactory(), content=big_pdf(6 * MB))
    assert response.status_code == 200
    assert "2026-100.pdf is 6.0 MB; the providers accept at most 5 MB per PDF." in response.content.decode()
    assert_nothing_kept(upload_dir)


def test_an_oversized_pdf_is_refused_unread_in_the_qonto_form(admin_client, upload_dir):
    files = [
        SimpleUploadedFile("big.pdf", big_pdf(6 * MB), "application/pdf"),
        SimpleUploadedFile("fine.pdf", pdf_bytes("2026-200"), "application/pdf"),
    ]
    response = admin_client.post(QONTO_URL, {"pdfs": files, "_send": "1"})
    assert response.status_code == 200
    assert "big.pdf is 6.0 MB; the providers accept at most 5 MB per PDF." in response.content.decode()
    assert_nothing_kept(upload_dir)


def test_more_files_than_allowed_are_refused_before_any_is_read(admin_client, upload_dir, settings):
    settings.TEST_UPLOAD_READ_FAILS_OVER = 0  # no file of this upload may be read at all
    content = pdf_bytes()
    files = [SimpleUploadedFile(f"{n}.pdf", content, "application/pdf") for n in range(25)]
    response = admin_client.post(QONTO_URL, {"pdfs": files, "_send": "1"})
    assert response.status_code == 200
    assert (
        "At most 20 PDFs per upload; you chose 25. Send the rest in a second upload."
        in response.content.decode()
    )
    assert_nothing_kept(upload_dir)


def test_django_refuses_far_more_files_than_the_form_allows(settings):
    assert settings.DATA_UPLOAD_MAX_NUMBER_FILES > settings.UPLOAD_MAX_FILES


def test_a_request_over_the_limit_gets_413_unparsed(admin_client, upload_dir, settings):
    settings.UPLOAD_MAX_REQUEST_BYTES = 1 * MB
    settings.FILE_UPLOAD_HANDLERS = [f"{HERE}.RefusingUploadHandler"]
    back = f"http://testserver{QONTO_URL}"
    files = [SimpleUploadedFile("a.pdf", big_pdf(2 * MB), "application/pdf")]
    response = admin_client.post(QONTO_URL, {"pdfs": files, "_send": "1"}, HTTP_REFERER=back)
    assert response.status_code == 413
    page = response.content.decode()
    assert (
        "This upload is 2.0 MB; at most 1 MB can be sent at once and each PDF may be at most 5 MB."
        f' <a href="{back}">Go back</a> and choose fewer or smaller files.'
    ) in page
    assert_nothing_kept(upload_dir)


def test_the_413_page_links_back_only_to_our_own_host(admin_client, upload_dir, settings):
    settings.UPLOAD_MAX_REQUEST_BYTES = 1 * MB
    files = [SimpleUploadedFile("a.pdf", big_pdf(2 * MB), "application/pdf")]
    response = admin_client.post(QONTO_URL, {"pdfs": files}, HTTP_REFERER="https://elsewhere.example/x")
    assert response.status_code == 413
    page = response.content.decode()
    assert "elsewhere.example" not in page
    assert "Go back and choose fewer or smaller files." in page


class Zeros:
    """A request body of zeros that is never held in memory; counts what was read."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        self.read_bytes += size
        return b"\0" * size

    def readline(self, size: int = -1) -> bytes:
        return self.read(size)


def refuse(length: int) -> tuple[int, str, int]:
    body = Zeros()
    request = RequestFactory().generic(
        "POST",
        QONTO_URL,
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(length),
        **{"wsgi.input": body},
    )
    response = RequestSizeLimitMiddleware(lambda request: pytest.fail("the request went on"))(request)
    return response.status_code, response.content.decode(), body.read_bytes


def test_the_default_limit_refuses_a_120_mb_upload_after_reading_it_away():
    status, page, read = refuse(120 * MB)
    assert status == 413
    assert (
        "This upload is 120.0 MB; at most 105 MB can be sent at once and each PDF may be at most 5 MB."
        " Go back and choose fewer or smaller files."
    ) in page
    # The whole body was read and dropped, so that the browser gets the page instead of a reset.
    assert read == 120 * MB


def test_the_body_read_away_is_bounded():
    status, _, read = refuse(10_000 * MB)
    assert status == 413
    assert read == 2 * settings.UPLOAD_MAX_REQUEST_BYTES


def test_a_body_without_length_is_refused_not_parsed(admin_client, upload_dir, settings):
    settings.FILE_UPLOAD_HANDLERS = [f"{HERE}.RefusingUploadHandler"]
    files = [SimpleUploadedFile("a.pdf", big_pdf(2 * MB), "application/pdf")]
    chunked = admin_client.post(
        QONTO_URL, {"pdfs": files}, CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked"
    )
    assert chunked.status_code == 411
    assert "no Content-Length header" in chunked.content.decode()
    # Without a length Django's MultiPartParser reads nothing: the page shows the empty form again.
    unsized = admin_client.post(QONTO_URL, {"pdfs": files}, CONTENT_LENGTH="")
    assert unsized.status_code == 200
    assert 'name="pdfs"' in unsized.content.decode()
    assert_nothing_kept(upload_dir)
