"""How many pages a run may still spend."""

from __future__ import annotations

import logging

from integrations import errors

logger = logging.getLogger(__name__)


class PageBudget:
    def __init__(self, pages: int) -> None:
        self.left = pages

    def spend_all(self, reason: errors.ProviderRateLimited) -> None:
        """The shared request budget ran out: stop here, keep what was done, go on next run."""
        logger.info("MijnKlantportaal sync stops early: %s", reason)
        self.left = 0
