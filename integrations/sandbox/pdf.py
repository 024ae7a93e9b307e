"""Small invoice PDFs written by hand, and reading them back.

``make_invoice_pdf`` writes a valid one-page PDF 1.4 (Helvetica, WinAnsi) without any library, so
seeding stays fast and the sandbox needs nothing beyond the standard library to produce files.
``read_invoice_pdf`` extracts the text with pypdf and picks out the fields the Qonto bulk import
reads from an uploaded invoice. Both speak the same line format::

    Invoice number: 2026-00042
    Customer: Bakker Bouw B.V.
    Issue date: 2026-11-01
    Due date: 2026-12-01
    Total: EUR 12.95
"""

from __future__ import annotations

import io
import re
from datetime import date
from decimal import Decimal, InvalidOperation

_PATTERNS = {
    "number": re.compile(r"^\s*Invoice number:\s*(\S.*?)\s*$", re.MULTILINE),
    "customer": re.compile(r"^\s*Customer:\s*(\S.*?)\s*$", re.MULTILINE),
    "issue_date": re.compile(r"^\s*Issue date:\s*(\d{4}-\d{2}-\d{2})\s*$", re.MULTILINE),
    "due_date": re.compile(r"^\s*Due date:\s*(\d{4}-\d{2}-\d{2})\s*$", re.MULTILINE),
    "amount": re.compile(r"^\s*Total:\s*(?:EUR\s*)?(\d+(?:\.\d{1,2})?)\s*$", re.MULTILINE),
}


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsi: parentheses and backslashes escaped, bytes > 127 as octal."""
    out = bytearray(b"(")
    for byte in text.encode("cp1252", errors="replace"):
        if byte in b"()\\":
            out += b"\\" + bytes([byte])
        elif byte < 32 or byte > 126:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    out += b")"
    return bytes(out)


def make_invoice_pdf(
    *,
    number: str,
    amount: Decimal,
    issue_date: date,
    due_date: date | None = None,
    customer: str = "",
) -> bytes:
    """A one-page A4 invoice whose text pypdf extracts line by line."""
    lines = ["INVOICE", "", f"Invoice number: {number}"]
    if customer:
        lines.append(f"Customer: {customer}")
    lines.append(f"Issue date: {issue_date.isoformat()}")
    if due_date is not None:
        lines.append(f"Due date: {due_date.isoformat()}")
    lines.append(f"Total: EUR {Decimal(amount).quantize(Decimal('0.01'))}")

    content = bytearray(b"BT\n/F1 12 Tf\n16 TL\n72 770 Td\n")
    for line in lines:
        content += _pdf_string(line) + b" Tj\nT*\n"
    content += b"ET\n"

    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + bytes(content) + b"endstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for index, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % index + body + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref_at)
    return bytes(out)


def read_invoice_pdf(data: bytes) -> dict:
    """Fields found in the PDF text: number, customer, amount (Decimal), issue_date, due_date (date).

    A field that is absent or unreadable is None; ``text`` holds everything extracted. A file pypdf
    cannot open gives all None (the caller applies its fallbacks)."""
    from pypdf import PdfReader  # imported here: seeding and the server never need it otherwise

    found: dict = dict.fromkeys(("number", "customer", "amount", "issue_date", "due_date"))
    found["text"] = ""
    try:
        reader = PdfReader(io.BytesIO(data))
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
    except Exception:  # pypdf raises many kinds on a damaged file; all mean "no text"
        return found
    found["text"] = text
    for field, pattern in _PATTERNS.items():
        match = pattern.search(text)
        if match:
            found[field] = match.group(1)
    for field in ("issue_date", "due_date"):
        if found[field] is not None:
            try:
                found[field] = date.fromisoformat(found[field])
            except ValueError:
                found[field] = None
    if found["amount"] is not None:
        try:
            found["amount"] = Decimal(found["amount"]).quantize(Decimal("0.01"))
        except InvalidOperation:
            found["amount"] = None
    return found
