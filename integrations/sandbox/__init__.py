"""A local sandbox of the MijnKlantportaal and Qonto APIs, for development and tests.

Plain Python (no Django): ``python -m integrations.sandbox`` runs it; tests use
:class:`SandboxServer` as a context manager. See :mod:`.server` for the URL layout, :mod:`.mkp` and
:mod:`.qonto` for the two APIs, :mod:`.faults` for fault injection and :mod:`.admin` for the
``/_sandbox`` endpoints.
"""

from integrations.sandbox.config import SandboxConfig
from integrations.sandbox.faults import FAULT_KINDS, FaultInjector
from integrations.sandbox.pdf import make_invoice_pdf, read_invoice_pdf
from integrations.sandbox.server import SandboxServer
from integrations.sandbox.store import Store

__all__ = [
    "FAULT_KINDS",
    "FaultInjector",
    "SandboxConfig",
    "SandboxServer",
    "Store",
    "make_invoice_pdf",
    "read_invoice_pdf",
]
