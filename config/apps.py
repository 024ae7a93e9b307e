from django.contrib.admin.apps import AdminConfig


class BackOfficeAdminConfig(AdminConfig):
    """Django's admin with the back-office's own site: the receivables dashboard on the index."""

    default_site = "config.admin.BackOfficeAdminSite"
