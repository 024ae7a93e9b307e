"""Django's date and time formats for the admin (``FORMAT_MODULE_PATH``): the same as
``invoices.formatting`` writes, so a field Django renders reads like a value formatted there,
"7 Dec 2026 16:22" and "7 Dec 2026". Input formats stay Django's."""

from invoices.formatting import DAY_FORMAT, MOMENT_FORMAT

DATE_FORMAT = DAY_FORMAT
DATETIME_FORMAT = MOMENT_FORMAT
TIME_FORMAT = "H:i"
