"""Qonto Business API: client invoices (receivables), their clients and PDFs."""

from integrations.qonto.auth import MemoryTokenStore, TokenStore
from integrations.qonto.client import DEFAULT_BASE_URL, SANDBOX_BASE_URL, QontoClient

__all__ = ["DEFAULT_BASE_URL", "SANDBOX_BASE_URL", "MemoryTokenStore", "QontoClient", "TokenStore"]
