from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from invoices.webhooks import views as webhooks

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    # The providers' webhook deliveries: no login, the signature is checked (invoices/webhooks).
    path("webhooks/mkp/", webhooks.mkp, name="webhook_mkp"),
    path("webhooks/qonto/", webhooks.qonto, name="webhook_qonto"),
]
