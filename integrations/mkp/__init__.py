"""MijnKlantportaal (MKP): customer invoices uploaded as PDF, marked paid, mirrored back."""

from integrations.mkp.client import DEFAULT_BASE_URL, MijnKlantportaalClient

__all__ = ["DEFAULT_BASE_URL", "MijnKlantportaalClient"]
