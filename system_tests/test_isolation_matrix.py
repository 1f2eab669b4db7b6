"""Every route, every kind of caller: exact status codes, and no other tenant's data in a body.

The routes come from the URL configuration itself (``get_resolver``), so a new endpoint that
is not given a row in the matrix below fails ``test_every_route_is_in_the_matrix`` with its
name. Admin routes are derived from ``admin.site._registry``: a newly registered model needs
a row in ``ADMIN_MODELS`` (what a tenant admin may do with it, and whether it is scoped).
"""

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.urls import URLResolver, get_resolver
from rest_framework.test import APIClient

from audit.tests.factories import ReadRecordFactory
from carenotes.notes.idempotency import IDEMPOTENCY_HEADER, REPLAYED_HEADER, REPLAYED_VALUE
from carenotes.notes.models import CareNote, CareNoteAmendment
from carenotes.notes.services import note_amend
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from tenants.models import ApiToken, Membership, Role
from tenants.services import TENANT_ADMIN_GROUP, api_token_create, membership_grant
from tenants.tests.factories import FacilityFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

PRINCIPALS = ("anonymous", "bad_token", "carer_a", "manager_a", "admin_a", "member_b", "superuser")
# Callers whose answers must carry nothing of tenant B (and member_b nothing of tenant A).
A_PRINCIPALS = ("carer_a", "manager_a", "admin_a")
STATS_DAY = "2025-03-10"
NOTE_TIME = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
A_NOTES, B_NOTES = 3, 7  # distinct counts, so a leaked count would be recognisable

OK, FOUND, NOT_FOUND = HTTPStatus.OK, HTTPStatus.FOUND, HTTPStatus.NOT_FOUND
FORBIDDEN, UNAUTHORIZED = HTTPStatus.FORBIDDEN, HTTPStatus.UNAUTHORIZED
CREATED, NOT_ALLOWED = HTTPStatus.CREATED, HTTPStatus.METHOD_NOT_ALLOWED


def codes(anonymous, bad_token, carer_a, manager_a, admin_a, member_b, superuser) -> dict:
    """Return the expected status per principal, in PRINCIPALS order."""
    values = (anonymous, bad_token, carer_a, manager_a, admin_a, member_b, superuser)
    return dict(zip(PRINCIPALS, values, strict=True))


PUBLIC = codes(*[OK] * 7)
# The API for tenant A's data: members of A in any role, and superusers.
A_MEMBERS_API = codes(UNAUTHORIZED, UNAUTHORIZED, OK, OK, OK, NOT_FOUND, OK)
# The admin lets in staff only; everyone else is sent to the login page.
STAFF = codes(FOUND, FOUND, FOUND, FOUND, OK, OK, OK)
# Tenant A's dashboard: its managers and admins and superusers; carers get a 403 page,
# members of B a 404, and callers without a session the login page.
A_DASHBOARD = codes(FOUND, FOUND, FORBIDDEN, OK, OK, NOT_FOUND, OK)
# The dashboard's API: the API's 401s, then the dashboard's roles.
A_DASHBOARD_API = codes(UNAUTHORIZED, UNAUTHORIZED, FORBIDDEN, OK, OK, NOT_FOUND, OK)
# Signed-in pages that are not about a tenant (password change).
SIGNED_IN = codes(FOUND, FOUND, *[OK] * 5)
# A range holding the world's notes (NOTE_TIME), so the dashboard has A's numbers to show.
DASHBOARD_QUERY = "period=custom&date_from=2025-03-01&date_to=2025-03-31"


@dataclass
class Side:
    """One tenant with distinctive names, so its data is recognisable in any response."""

    tag: str
    tenant: object
    facility: object
    patient: object
    notes: list
    carer: object
    manager: object
    admin: object
    membership: object
    token: ApiToken
    read_record: object
    amendment: CareNoteAmendment

    def markers(self) -> list[str]:
        return [
            self.amendment.reason,
            self.tenant.name,
            self.facility.name,
            self.patient.reference,
            self.patient.display_name,
            self.notes[0].body,
            self.carer.username,
            self.manager.username,
            self.admin.username,
        ]

    def ids(self) -> dict[str, set[int]]:
        return {
            "tenant": {self.tenant.pk},
            "facility": {self.facility.pk},
            "patient": {self.patient.pk},
            "note": {note.pk for note in self.notes},
            "user": {self.carer.pk, self.manager.pk, self.admin.pk},
        }


def _side(tag: str, notes: int) -> Side:
    tenant = TenantFactory(name=f"{tag} Care Group", slug=tag.lower())
    facility = FacilityFactory(tenant=tenant, name=f"{tag} House")
    patient = PatientFactory(
        facility=facility, reference=f"{tag[:3].upper()}-7731", display_name=f"{tag} Resident"
    )
    users = {}
    for role in Role:
        users[role] = UserFactory(username=f"{tag.lower()}-{role.value}")
        membership_grant(user=users[role], tenant=tenant, role=role)
    carer = users[Role.CARER]
    token, _ = api_token_create(user=carer, name=f"{tag} token")
    notes = CareNoteFactory.create_batch(
        notes, patient=patient, author=carer, body=f"{tag} note body", created_at=NOTE_TIME
    )
    # An amended note: its amendment and change history are the tenant's data too.
    amendment = note_amend(
        tenant=tenant,
        author=carer,
        note_id=notes[0].pk,
        reason=f"{tag} amendment",
        category="treatment",
    )
    return Side(
        tag=tag,
        tenant=tenant,
        facility=facility,
        patient=patient,
        notes=notes,
        amendment=amendment,
        carer=carer,
        manager=users[Role.MANAGER],
        admin=users[Role.ADMIN],
        membership=Membership.objects.get(user=carer, tenant=tenant),
        token=token,
        # Read by the carer: a tenant admin who saw the other tenant's would see its name.
        read_record=ReadRecordFactory(tenant=tenant, user=carer),
    )


@dataclass
class World:
    a: Side
    b: Side
    superuser: object
    clients: dict[str, APIClient] = field(default_factory=dict)


def _client(user=None, *, token: str | None = None) -> APIClient:
    client = APIClient()
    if user is not None:
        _, token = api_token_create(user=user, name="matrix")
        client.force_login(user)  # the admin's session, besides the API token
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def world() -> World:
    a, b = _side("Aardvarkian", A_NOTES), _side("Zebulonian", B_NOTES)
    superuser = UserFactory(username="matrix-root", is_superuser=True, is_staff=True)
    world = World(a=a, b=b, superuser=superuser)
    world.clients = {
        "anonymous": _client(),
        "bad_token": _client(token="not-a-real-key"),
        "carer_a": _client(a.carer),
        "manager_a": _client(a.manager),
        "admin_a": _client(a.admin),
        "member_b": _client(b.admin),
        "superuser": _client(superuser),
    }
    return world


@dataclass(frozen=True)
class Visit:
    """One request to a route: method, URL for the world, body, expected status per caller."""

    method: str
    url: Callable[[World], str]
    expected: dict
    body: Callable[[World], dict] | None = None


def _note_body(world: World) -> dict:
    return {
        "tenant_id": world.a.tenant.pk,
        "facility_id": world.a.facility.pk,
        "patient_id": world.a.patient.pk,
        "category": "observation",
        "priority": 3,
        "body": f"{world.a.tag} posted note",
    }


_amendments = itertools.count()


def _amendment_body(world: World) -> dict:
    # A new text each time: an amendment that changes nothing is a 400.
    return {"reason": "Matrix correction.", "body": f"Corrected text {next(_amendments)}"}


# Routes outside the model admins, by name (or pattern when unnamed).
ROUTES: dict[str, list[Visit]] = {
    # `/` (and the admin's "View site") redirects to the API documentation, for everyone.
    "home": [Visit("get", lambda w: "/", codes(*[FOUND] * 7))],
    "healthz": [Visit("get", lambda w: "/healthz", PUBLIC)],
    "readyz": [Visit("get", lambda w: "/readyz", PUBLIC)],
    # Off while METRICS_TOKEN is unset (as here): the same 404 as a URL that does not exist.
    "metrics": [Visit("get", lambda w: "/metrics", codes(*[NOT_FOUND] * 7))],
    # DRF views authenticate every request: a bad token is refused even where none is needed.
    "schema": [Visit("get", lambda w: "/api/schema/", codes(OK, UNAUTHORIZED, *[OK] * 5))],
    "swagger-ui": [Visit("get", lambda w: "/api/docs/", codes(OK, UNAUTHORIZED, *[OK] * 5))],
    "me": [Visit("get", lambda w: "/api/me/", codes(UNAUTHORIZED, UNAUTHORIZED, *[OK] * 5))],
    "care-stats": [
        Visit(
            "get",
            lambda w: f"/api/care-stats/?tenant_id={w.a.tenant.pk}&date={STATS_DAY}",
            A_MEMBERS_API,
        )
    ],
    "note-list": [
        Visit("get", lambda w: f"/api/notes/?tenant_id={w.a.tenant.pk}", A_MEMBERS_API),
        # Only members write care records; a superuser outside the tenant is refused (403).
        Visit(
            "post",
            lambda w: "/api/notes/",
            codes(UNAUTHORIZED, UNAUTHORIZED, CREATED, CREATED, CREATED, NOT_FOUND, FORBIDDEN),
            body=_note_body,
        ),
    ],
    "resident-list": [
        Visit("get", lambda w: f"/api/residents/?tenant_id={w.a.tenant.pk}", A_MEMBERS_API),
        Visit(
            "get",
            lambda w: (
                f"/api/residents/?tenant_id={w.a.tenant.pk}&reference={w.a.patient.reference}"
            ),
            A_MEMBERS_API,
        ),
    ],
    "resident-detail": [
        Visit("get", lambda w: f"/api/residents/{w.a.patient.pk}/", A_MEMBERS_API),
    ],
    # Any member amends; a superuser outside the tenant is refused (403), as for recording.
    "note-amendment-create": [
        Visit(
            "post",
            lambda w: f"/api/notes/{w.a.notes[0].pk}/amendments/",
            codes(UNAUTHORIZED, UNAUTHORIZED, CREATED, CREATED, CREATED, NOT_FOUND, FORBIDDEN),
            body=_amendment_body,
        ),
    ],
    "note-detail": [
        Visit("get", lambda w: f"/api/notes/{w.a.notes[0].pk}/", A_MEMBERS_API),
        Visit(
            "delete",
            lambda w: f"/api/notes/{w.a.notes[0].pk}/",
            codes(UNAUTHORIZED, UNAUTHORIZED, *[NOT_ALLOWED] * 5),
        ),
    ],
    "admin:index": [Visit("get", lambda w: "/admin/", STAFF)],
    # The managers' dashboard (dashboard/): the picker sends a one-tenant user on (302) and
    # shows superusers every tenant; carers of A only have no dashboard at all (403).
    "dashboard:index": [
        Visit("get", lambda w: "/dashboard/", codes(*[FOUND] * 2, FORBIDDEN, *[FOUND] * 3, OK))
    ],
    **{
        name: [
            Visit(
                "get",
                lambda w, p=path: f"/dashboard/{w.a.tenant.pk}/{p}?{DASHBOARD_QUERY}",
                A_DASHBOARD,
            )
        ]
        for name, path in (
            ("dashboard:tenant", ""),
            ("dashboard:attention", "attention/"),
            ("dashboard:high-priority", "high-priority/"),
            ("dashboard:export-counts", "export/counts.csv"),
            ("dashboard:export-high-priority", "export/high-priority.csv"),
        )
    },
    "residents-attention": [
        Visit(
            "get",
            lambda w: f"/api/residents/attention/?tenant_id={w.a.tenant.pk}&hours=1",
            A_DASHBOARD_API,
        )
    ],
    "login": [Visit("get", lambda w: "/accounts/login/", PUBLIC)],
    # Signing out is a POST (with CSRF); a GET changes nothing.
    "logout": [Visit("get", lambda w: "/accounts/logout/", codes(*[NOT_ALLOWED] * 7))],
    "password_change": [Visit("get", lambda w: "/accounts/password_change/", SIGNED_IN)],
    "password_change_done": [Visit("get", lambda w: "/accounts/password_change/done/", SIGNED_IN)],
    # Signed-in staff are sent on to the index; anyone else sees the form.
    "admin:login": [Visit("get", lambda w: "/admin/login/", codes(*[OK] * 4, *[FOUND] * 3))],
    "admin:logout": [
        Visit("get", lambda w: "/admin/logout/", codes(*[FOUND] * 4, *[NOT_ALLOWED] * 3))
    ],
    "admin:password_change": [Visit("get", lambda w: "/admin/password_change/", STAFF)],
    "admin:password_change_done": [Visit("get", lambda w: "/admin/password_change/done/", STAFF)],
    # Without its parameters the autocomplete refuses; with them it is the scoped queryset.
    "admin:autocomplete": [
        Visit("get", lambda w: "/admin/autocomplete/", codes(*[FOUND] * 4, *[FORBIDDEN] * 3))
    ],
    "admin:jsi18n": [Visit("get", lambda w: "/admin/jsi18n/", STAFF)],
    # No model has a public URL; member_b cannot even load A's note (row-level security).
    "admin:view_on_site": [
        Visit(
            "get",
            lambda w: f"/admin/r/{_content_type_id(CareNote)}/{w.a.notes[0].pk}/",
            codes(*[FOUND] * 4, *[NOT_FOUND] * 3),
        )
    ],
    "admin:app_list": [
        Visit("get", lambda w, app=app: f"/admin/{app}/", STAFF)
        for app in ("auth", "tenants", "carenotes", "audit")
    ],
    "admin:auth_user_password_change": [
        Visit(
            "get",
            lambda w, side=side: f"/admin/auth/user/{getattr(w, side).carer.pk}/password/",
            codes(*[FOUND] * 4, FORBIDDEN, FORBIDDEN, OK),
        )
        for side in ("a", "b")
    ],
    "admin/(?P<url>.*)$": [
        Visit("get", lambda w: "/admin/no-such-page/", codes(*[FOUND] * 4, *[NOT_FOUND] * 3))
    ],
}


# Ranges and periods of the stats endpoint: the same callers get the same statuses, and a
# range answer carries no other tenant's data either.
STATS_RANGE = ("2025-03-01", "2025-03-31")  # holds STATS_DAY
CARE_STATS_RANGE_VISITS = [
    Visit(
        "get",
        lambda w: (
            f"/api/care-stats/?tenant_id={w.a.tenant.pk}"
            f"&date_from={STATS_RANGE[0]}&date_to={STATS_RANGE[1]}"
        ),
        A_MEMBERS_API,
    ),
    Visit(
        "get", lambda w: f"/api/care-stats/?tenant_id={w.a.tenant.pk}&period=today", A_MEMBERS_API
    ),
]
ROUTES["care-stats"] = [*ROUTES["care-stats"], *CARE_STATS_RANGE_VISITS]


@dataclass(frozen=True)
class AdminModel:
    """What a tenant admin may do with a model, and how to find side A's and B's objects."""

    objects: Callable[[World], tuple[object, object]]
    view: bool = False
    add: bool = False
    delete: bool = False
    # Scoped admins answer 404 for another tenant's object; others refuse by permission.
    scoped: bool = True
    # Nobody adds or deletes, superusers included (the access audit).
    read_only: bool = False
    # Records nobody deletes in the admin (amendments) refuse superusers too.
    superuser_delete: bool = True


ADMIN_MODELS: dict[str, AdminModel] = {
    "tenants.tenant": AdminModel(lambda w: (w.a.tenant, w.b.tenant), view=True),
    "tenants.facility": AdminModel(lambda w: (w.a.facility, w.b.facility), view=True, add=True),
    "tenants.membership": AdminModel(
        lambda w: (w.a.membership, w.b.membership), view=True, add=True, delete=True
    ),
    "carenotes.patient": AdminModel(lambda w: (w.a.patient, w.b.patient), view=True, add=True),
    # Tenant admins see notes read-only (with amendments and history) and add notes; they
    # amend through the amendments' add form, and never change or delete either.
    "carenotes.carenote": AdminModel(lambda w: (w.a.notes[0], w.b.notes[0]), view=True, add=True),
    "carenotes.carenoteamendment": AdminModel(
        lambda w: (w.a.amendment, w.b.amendment), view=True, add=True, superuser_delete=False
    ),
    "auth.user": AdminModel(lambda w: (w.a.carer, w.b.carer), view=True),
    "audit.readrecord": AdminModel(
        lambda w: (w.a.read_record, w.b.read_record), view=True, read_only=True
    ),
    # Superuser-only models: tenant admins are refused by permission, whatever the object.
    "tenants.apitoken": AdminModel(lambda w: (w.a.token, w.b.token), scoped=False),
    "auth.group": AdminModel(
        lambda w: (Group.objects.get(name=TENANT_ADMIN_GROUP),) * 2, scoped=False
    ),
}
ADMIN_VIEWS = ("changelist", "add", "change", "history", "delete", "redirect")


def _content_type_id(model) -> int:
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_model(model).pk


def _tenant_admin_code(rules: AdminModel, view: str, own: bool) -> HTTPStatus:
    """The status a tenant admin gets for ``view`` of their own or the other tenant's object."""
    if view == "redirect":
        return FOUND
    if not own and view in ("change", "history", "delete") and rules.scoped:
        return NOT_FOUND
    allowed = {"changelist": rules.view, "add": rules.add, "delete": rules.delete}
    return OK if allowed.get(view, rules.view) else FORBIDDEN


def _superuser_code(rules: AdminModel, view: str) -> HTTPStatus:
    if view == "redirect":
        return FOUND
    if rules.read_only and view in ("add", "delete"):
        return FORBIDDEN
    return FORBIDDEN if view == "delete" and not rules.superuser_delete else OK


def _admin_url(label: str, view: str, obj) -> str:
    base = f"/admin/{label.replace('.', '/')}/"
    return {
        "changelist": base,
        "add": f"{base}add/",
        "redirect": f"{base}{obj.pk}/",
    }.get(view, f"{base}{obj.pk}/{view}/")


def admin_model_visits(label: str, rules: AdminModel) -> list[Visit]:
    """Return the visits of one model admin: every view, on tenant A's and B's object."""
    visits = []
    for view in ADMIN_VIEWS:
        for index, side in enumerate(("a", "b") if view not in ("changelist", "add") else ("a",)):
            expected = codes(
                *[FOUND] * 4,
                _tenant_admin_code(rules, view, own=side == "a"),
                _tenant_admin_code(rules, view, own=side == "b"),
                _superuser_code(rules, view),
            )
            visits.append(
                Visit(
                    "get",
                    lambda w, i=index, v=view: _admin_url(label, v, rules.objects(w)[i]),
                    expected,
                )
            )
    return visits


def _routes(resolver=None, prefix: str = "", namespace: str = ""):
    """Yield (key, full pattern) of every URL pattern: the name, or the pattern if unnamed."""
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
            yield from _routes(pattern, prefix + str(pattern.pattern), inner)
        else:
            full = prefix + str(pattern.pattern)
            yield (f"{namespace}{pattern.name}" if pattern.name else full), full


def _model_admin_keys(label: str) -> set[str]:
    app, model = label.split(".")
    named = {f"admin:{app}_{model}_{view}" for view in ADMIN_VIEWS if view != "redirect"}
    return named | {f"admin/{app}/{model}/<path:object_id>/"}


def test_every_route_is_in_the_matrix():
    registered = {model._meta.label_lower for model in admin.site._registry}
    missing_models = sorted(registered - set(ADMIN_MODELS))
    assert missing_models == [], f"admin models without a row in ADMIN_MODELS: {missing_models}"
    covered = set(ROUTES)
    for label in registered:
        covered |= _model_admin_keys(label)
    missing = sorted(key for key, _ in _routes() if key not in covered)
    assert missing == [], f"routes without a row in the isolation matrix: {missing}"


def _ids_in(data, found: dict[str, set[int]] | None = None) -> dict[str, set[int]]:
    """Collect the ids a JSON answer mentions, by kind (tenant, facility, patient, note, user)."""
    found = (
        found
        if found is not None
        else {kind: set() for kind in ("tenant", "facility", "patient", "note", "user")}
    )
    kinds = {
        "tenant_id": "tenant",
        "facility_id": "facility",
        "patient_id": "patient",
        "author_id": "user",
        "user_id": "user",
    }
    if isinstance(data, dict):
        for key, value in data.items():
            if key in kinds and isinstance(value, int):
                found[kinds[key]].add(value)
            elif key == "facility_ids":
                found["facility"].update(value)
            elif key == "by_facility":
                found["facility"].update(int(facility_id) for facility_id in value)
            elif key == "id" and "reason" in data:
                continue  # an amendment's own id
            elif key == "id" and "category" in data:
                found["note"].add(value)
            elif key == "id" and "reference" in data:
                found["patient"].add(value)
            else:
                _ids_in(value, found)
    elif isinstance(data, list):
        for item in data:
            _ids_in(item, found)
    return found


def _body(response) -> bytes:
    if response.streaming:  # the CSV exports
        return b"".join(response.streaming_content)
    return response.content


def _leaks(response, other: Side) -> list[str]:
    text = _body(response).decode(errors="replace")
    leaks = [f"text {marker!r}" for marker in other.markers() if marker in text]
    if response.get("Content-Type", "").startswith("application/json") and text:
        mentioned = _ids_in(json.loads(text))
        for kind, ids in other.ids().items():
            if mentioned[kind] & ids:
                leaks.append(f"{kind} ids {sorted(mentioned[kind] & ids)}")
    return leaks


def _all_visits() -> list[tuple[str, Visit]]:
    visits = [(key, visit) for key, route_visits in ROUTES.items() for visit in route_visits]
    for model in admin.site._registry:
        label = model._meta.label_lower
        visits += [(label, visit) for visit in admin_model_visits(label, ADMIN_MODELS[label])]
    return visits


def test_every_route_answers_each_caller_exactly_and_leaks_nothing(world):
    failures = []
    for key, visit in _all_visits():
        url = visit.url(world)
        for principal in PRINCIPALS:
            client = world.clients[principal]
            kwargs = {"format": "json"} if visit.body else {}
            data = visit.body(world) if visit.body else None
            response = getattr(client, visit.method)(url, data, **kwargs)
            if response.status_code != visit.expected[principal]:
                failures.append(
                    f"{visit.method.upper()} {url} ({key}) as {principal}: "
                    f"{response.status_code}, expected {visit.expected[principal]:d}"
                )
            other = world.b if principal in A_PRINCIPALS else world.a
            if principal in (*A_PRINCIPALS, "member_b"):
                failures += [
                    f"{visit.method.upper()} {url} as {principal} shows tenant {other.tag}: {leak}"
                    for leak in _leaks(response, other)
                ]
    assert failures == []


def test_tenant_a_stats_count_only_tenant_a_notes(world):
    url = f"/api/care-stats/?tenant_id={world.a.tenant.pk}&date={STATS_DAY}"
    for principal in A_PRINCIPALS:
        body = world.clients[principal].get(url).json()
        assert (body["total_notes"], body["facility_ids"]) == (A_NOTES, [world.a.facility.pk])


def test_tenant_a_dashboard_and_exports_count_only_tenant_a_notes(world):
    base = f"/dashboard/{world.a.tenant.pk}/"
    for principal in ("manager_a", "admin_a", "superuser"):
        client = world.clients[principal]
        page = client.get(f"{base}?{DASHBOARD_QUERY}").content.decode()
        assert world.a.facility.name in page and world.a.notes[0].body not in page
        assert f'"total_notes": {A_NOTES}' in page
        counts = _body(client.get(f"{base}export/counts.csv?{DASHBOARD_QUERY}")).decode()
        assert sum(int(line.rsplit(",", 1)[1]) for line in counts.splitlines()[1:]) == A_NOTES


def test_tenant_a_range_stats_count_only_tenant_a_notes_and_residents(world):
    url = (
        f"/api/care-stats/?tenant_id={world.a.tenant.pk}"
        f"&date_from={STATS_RANGE[0]}&date_to={STATS_RANGE[1]}"
    )
    for principal in A_PRINCIPALS:
        body = world.clients[principal].get(url).json()
        assert (body["total_notes"], body["patients"], body["facility_ids"]) == (
            A_NOTES,
            1,
            [world.a.facility.pk],
        )
        assert sum(day["total_notes"] for day in body["by_day"]) == A_NOTES


# The tenant-choosing lists, and the parameters each needs besides tenant_id.
TENANT_LISTS = {
    "/api/notes/": "",
    "/api/residents/": "",
    "/api/care-stats/": f"&date={STATS_DAY}",
    "/api/residents/attention/": "",
}


@pytest.mark.parametrize("url", list(TENANT_LISTS))
def test_a_repeated_tenant_id_is_the_same_400_for_every_caller_in_any_order(world, url):
    a, b = world.a.tenant.pk, world.b.tenant.pk
    answers = {}
    for principal in ("carer_a", "member_b", "superuser"):
        for first, second in ((a, b), (b, a), (a, a)):
            query = f"tenant_id={first}&tenant_id={second}{TENANT_LISTS[url]}"
            response = world.clients[principal].get(f"{url}?{query}")
            answers[principal, first, second] = (response.status_code, response.json())
    # Members, non-members and superusers alike learn only that the parameter was repeated.
    expected = (HTTPStatus.BAD_REQUEST, {"tenant_id": ["Give this parameter once."]})
    assert answers == dict.fromkeys(answers, expected)


def test_an_idempotency_key_replays_its_answer_to_its_owner_only(world):
    headers = {IDEMPOTENCY_HEADER: "matrix-key"}
    first = world.clients["carer_a"].post(
        "/api/notes/", _note_body(world), format="json", headers=headers
    )
    assert first.status_code == CREATED
    answers = {}
    for principal in PRINCIPALS:
        response = world.clients[principal].post(
            "/api/notes/", _note_body(world), format="json", headers=headers
        )
        replayed = response.get(REPLAYED_HEADER) == REPLAYED_VALUE
        is_first = response.status_code == CREATED and response.json()["id"] == first.json()["id"]
        answers[principal] = (response.status_code, replayed, is_first)
    # The same key is each caller's own: only its owner gets the stored answer back.
    assert answers == {
        "anonymous": (UNAUTHORIZED, False, False),
        "bad_token": (UNAUTHORIZED, False, False),
        "carer_a": (CREATED, True, True),
        "manager_a": (CREATED, False, False),
        "admin_a": (CREATED, False, False),
        "member_b": (NOT_FOUND, False, False),
        "superuser": (FORBIDDEN, False, False),
    }


def test_a_tenant_admin_sees_their_notes_history_and_amendments_only(world):
    client = world.clients["admin_a"]
    ours = client.get(f"/admin/carenotes/carenote/{world.a.notes[0].pk}/change/")
    page = ours.content.decode()
    # The history inline names the amendment's reason; the amendment inline lists it.
    assert f"amendment reason: {world.a.amendment.reason}" in page
    assert "Change history (written by the database)" in page
    assert world.b.amendment.reason not in page
    theirs = client.get(f"/admin/carenotes/carenote/{world.b.notes[0].pk}/change/")
    assert theirs.status_code == NOT_FOUND
    listed = client.get("/admin/carenotes/carenoteamendment/").content.decode()
    assert world.a.amendment.reason in listed and world.b.amendment.reason not in listed
