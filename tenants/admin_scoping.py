"""Scopes the Django admin to the tenants a staff user administers; superusers see everything.

A tenant admin (a user with an ``admin`` membership, made staff by ``membership_grant``)
sees and edits only rows of the tenants they administer: change lists, object pages,
foreign-key choices, autocomplete results and related list filters all go through the
scoped ``get_queryset`` of the related model's admin.

Whoever sees several tenants (a superuser, an admin of two tenants) gets tenant-owned
choices labelled with their tenant ("Oak House (Harbour View Care)"), in list filters,
foreign-key choices and autocomplete results alike: two tenants may name homes the same.
"""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.core.exceptions import FieldDoesNotExist
from django.http import Http404

from carenotes.core.colocation import colocated
from tenants.models import Membership, Role

# Attribute on the request's user object: the scope is looked up once per request.
_SCOPE_ATTR = "_admin_tenant_ids"


def admin_tenant_ids(user) -> frozenset[int] | None:
    """Return the ids of the tenants ``user`` administers, or None for a superuser (all)."""
    if user.is_superuser:
        return None
    cached = getattr(user, _SCOPE_ATTR, None)
    if cached is None:
        cached = frozenset(
            Membership.objects.filter(user_id=user.pk, role=Role.ADMIN).values_list(
                "tenant_id", flat=True
            )
        )
        setattr(user, _SCOPE_ATTR, cached)
    return cached


def admin_sees_several_tenants(user) -> bool:
    """Return True when ``user``'s admin shows rows of more than one tenant."""
    tenant_ids = admin_tenant_ids(user)
    return tenant_ids is None or len(tenant_ids) > 1


def _belongs_to_one_tenant(model) -> bool:
    try:
        return model._meta.get_field("tenant").many_to_one
    except FieldDoesNotExist:
        return False


def tenant_labelled(obj) -> str:
    """Return ``obj``'s name followed by its tenant's, e.g. "Oak House (Harbour View Care)"."""
    return f"{obj} ({obj.tenant})"


def labels_with_tenant(request, model) -> bool:
    """Return True when choices of ``model`` shown to the request's user name their tenant."""
    return _belongs_to_one_tenant(model) and admin_sees_several_tenants(request.user)


class TenantScopedAdmin(admin.ModelAdmin):
    """ModelAdmin whose rows, object URLs and foreign-key choices stay inside the user's tenants.

    ``tenant_lookup`` is the ORM path from the model to its tenant (``"tenant"`` for rows
    carrying ``tenant_id``, ``"id"`` for ``Tenant`` itself).
    """

    tenant_lookup = "tenant"

    def scope_queryset(self, request, queryset):
        """Return ``queryset`` narrowed to the tenants the request's user administers."""
        tenant_ids = admin_tenant_ids(request.user)
        if tenant_ids is None:
            return queryset
        return queryset.filter(**{f"{self.tenant_lookup}__in": tenant_ids})

    def tenant_ids_of(self, obj) -> set[int]:
        """Return the tenant ids an object belongs to."""
        return {getattr(obj, f"{self.tenant_lookup}_id")}

    def in_scope(self, request, obj) -> bool:
        """Return True when the request's user may see ``obj`` (None: the model in general)."""
        tenant_ids = admin_tenant_ids(request.user)
        return tenant_ids is None or obj is None or bool(self.tenant_ids_of(obj) & tenant_ids)

    # Tenant tables the changelist joins (list_select_related, filters): joined on the row's
    # own tenant too, so that on Citus the page's statement runs on one worker.
    colocated_relations: tuple[str, ...] = ()

    def get_queryset(self, request):
        queryset = colocated(super().get_queryset(request), *self.colocated_relations)
        return self.scope_queryset(request, queryset)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self.in_scope(request, obj)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.in_scope(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.in_scope(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related_admin = self.admin_site._registry.get(db_field.related_model)
        labelled = labels_with_tenant(request, db_field.related_model)
        if isinstance(related_admin, TenantScopedAdmin):
            queryset = related_admin.get_queryset(request)
            kwargs.setdefault(
                "queryset", queryset.select_related("tenant") if labelled else queryset
            )
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if labelled and formfield is not None:
            # Also the label of an autocomplete widget's selected option.
            formfield.label_from_instance = tenant_labelled
        return formfield

    def _object_or_404(self, request, object_id) -> None:
        # Django would redirect to the index with "doesn't exist"; a crafted URL to another
        # tenant's object gets a plain 404 instead, the same as a nonexistent id.
        if self.get_object(request, unquote(object_id)) is None:
            raise Http404("No such object.")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._object_or_404(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        self._object_or_404(request, object_id)
        return super().delete_view(request, object_id, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._object_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)


class ScopedRelatedFieldListFilter(admin.RelatedFieldListFilter):
    """Related-object list filter offering only the objects the user's scope allows."""

    def has_output(self) -> bool:
        # Django drops a filter with fewer than two choices, and with it any value given in
        # the URL; a tenant admin with one facility must still be able to filter by it.
        return True

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin)
        related_admin = model_admin.admin_site._registry.get(field.related_model)
        if not isinstance(related_admin, TenantScopedAdmin):
            return super().field_choices(field, request, model_admin)
        if labels_with_tenant(request, field.related_model):
            queryset = related_admin.get_queryset(request).select_related("tenant")
            if ordering:
                queryset = queryset.order_by(*ordering)
            return [(obj.pk, tenant_labelled(obj)) for obj in queryset]
        allowed = related_admin.get_queryset(request).values("pk")
        return field.get_choices(
            include_blank=False, ordering=ordering, limit_choices_to={"pk__in": allowed}
        )


class TenantLabelledAutocompleteJsonView(AutocompleteJsonView):
    """The admin's autocomplete, with results labelled by tenant as ``labels_with_tenant``
    decides (``admin.site.autocomplete_view`` is set to ``tenant_labelled_autocomplete``)."""

    def _labelled(self) -> bool:
        return labels_with_tenant(self.request, self.model_admin.model)

    def get_queryset(self):
        queryset = super().get_queryset()
        return queryset.select_related("tenant") if self._labelled() else queryset

    def serialize_result(self, obj, to_field_name):
        result = super().serialize_result(obj, to_field_name)
        if self._labelled():
            result["text"] = tenant_labelled(obj)
        return result


def tenant_labelled_autocomplete(request):
    """The admin site's autocomplete view (``AdminSite.autocomplete_view``), tenant-labelled."""
    return TenantLabelledAutocompleteJsonView.as_view(admin_site=admin.site)(request)
