"""What every admin of the back-office shares: refusals on the server, not only hidden controls."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest


class GuardedAdmin(admin.ModelAdmin):
    """An admin whose actions and extra pages answer 403 to a user without their permission.

    Django drops an action the user may not run from the menu and, when one is posted anyway,
    answers with the changelist and "No action selected"; here such a POST is refused outright.
    """

    def has_codename(self, request: HttpRequest, codename: str) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def require(self, allowed: bool) -> None:
        if not allowed:
            raise PermissionDenied

    def changelist_view(self, request, extra_context=None):
        action = request.POST.get("action") if request.method == "POST" else None
        if action is not None:
            self.require(action in self.get_actions(request))
        return super().changelist_view(request, extra_context)

    def guarded_view(self, view: Callable) -> Callable:
        """An extra page behind the admin's login; the view itself checks its permission."""
        return self.admin_site.admin_view(view)
