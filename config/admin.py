"""The back-office's admin site: Django's own, with the receivables dashboard on its index for staff
who may see invoices (``config.apps.BackOfficeAdminConfig`` makes it ``admin.site``).

It lives outside ``invoices.admin``: that package registers its admins on ``admin.site`` when
imported, so the site itself must be importable before it."""

from __future__ import annotations

from django.contrib import admin

from invoices import dashboard, formatting, selectors


class BackOfficeAdminSite(admin.AdminSite):
    site_header = "Invoice back-office"
    site_title = "Invoice back-office"
    index_title = "Dashboard"
    index_template = "admin/dashboard/index.html"
    # The list's key columns need the width at 1366 px; the breadcrumbs and the index lead
    # everywhere the sidebar did.
    enable_nav_sidebar = False
    empty_value_display = formatting.EMPTY

    def index(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        if request.user.is_active and request.user.has_perm("invoices.view_invoice"):
            extra_context |= {
                "dashboard": dashboard.receivables_dashboard(),
                "warnings": selectors.admin_warnings(),
                "dso_days": dashboard.DSO_DAYS,
            }
        return super().index(request, extra_context)
