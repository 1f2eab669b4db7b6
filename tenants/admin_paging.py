"""Change-list paging that stays O(page) at any table size: no COUNT(*) over the notes.

The count is the planner's estimate, so the page says so: "about 100,000 care notes" (two
significant figures), and an exact number only where the rows on the page prove it.
"""

import json

from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import EmptyResultSet
from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

from tenants.rls import rls_owner

# Deeper pages are not browsed; bigger numbers would overflow PostgreSQL's bigint OFFSET.
PAGE_NUMBER_MAX = 1_000_000
# Significant figures of an estimated count: the planner is rarely closer than that.
ESTIMATE_SIGNIFICANT_FIGURES = 2
ESTIMATE_PREFIX = "about"


def approximate_count_label(count: int) -> str:
    """Return an estimated count as shown: "about 120,000" for 123,456, "about 57" for 57."""
    excess_digits = len(str(count)) - ESTIMATE_SIGNIFICANT_FIGURES
    rounded = round(count, -excess_digits) if excess_digits > 0 else count
    return f"{ESTIMATE_PREFIX} {rounded:,}"


def queryset_row_estimate(queryset) -> int:
    """Return the planner's row estimate for ``queryset`` (one EXPLAIN, no rows read)."""
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:
        return 0
    # As the owner: row-level security adds its own quals, whose default selectivities
    # (a parameter array, an on/off switch) would skew the estimate, up to 50x low with
    # 500 tenants. EXPLAIN without ANALYZE reads no row, and the queryset is already
    # narrowed to the user's tenants by TenantScopedAdmin (docs/SECURITY.md).
    with rls_owner(), connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):  # psycopg decodes json; other drivers may not
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """A paginator whose ``count`` is the planner's estimate instead of ``SELECT COUNT(*)``.

    The estimate can be off either way, so any positive page number is served (an empty
    page past the real end) rather than refused.
    """

    @cached_property
    def count(self) -> int:
        return queryset_row_estimate(self.object_list)

    def validate_number(self, number):
        try:
            number = int(number)
        except (TypeError, ValueError):
            number = 1
        return min(max(number, 1), PAGE_NUMBER_MAX)

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        return self._get_page(self.object_list[bottom : bottom + self.per_page], number, self)


class BoundedChangeList(ChangeList):
    """ChangeList that never fetches an unsliced queryset, and whose count says what it is.

    Django shows every row when the count says they fit on one page (or under "show
    all"); with an estimated count that could be a million rows, so the fetch is always
    one page (or at most ``list_max_show_all`` rows).

    The fetched page then settles the count: a page that is not full is the last one, so
    the count is exact (no page links past it); a full page means at least one more row may
    follow, whatever the estimate says. Templates show ``result_count_label``.
    """

    result_count_is_estimate = True

    @property
    def result_count_label(self) -> str:
        """Return the count as shown: "about 120,000", or "12" when it is exact."""
        if self.result_count_is_estimate:
            return approximate_count_label(self.result_count)
        return f"{self.result_count:,}"

    def get_results(self, request):
        super().get_results(request)
        if not self.result_list.query.is_sliced:
            if self.show_all:
                self.result_list = self.result_list[: self.list_max_show_all]
            else:
                self.result_list = self.paginator.page(self.page_num).object_list
        self._settle_count()

    def _settle_count(self) -> None:
        rows = len(self.result_list)  # fetches the page once; the template reuses the rows
        if self.show_all and self.can_show_all:
            page_size, offset = self.list_max_show_all, 0
        else:
            page_num = self.paginator.validate_number(self.page_num)
            page_size, offset = self.list_per_page, (page_num - 1) * self.list_per_page
        if rows < page_size and (rows or offset == 0):
            self._use_count(offset + rows, exact=True)
        elif rows:  # a full page: more rows may follow, whatever the estimate says
            self._use_count(max(self.result_count, offset + rows + 1), exact=False)
        else:  # past the end, which the estimate put further: it stays an estimate
            self._use_count(self.result_count, exact=False)

    def _use_count(self, count: int, *, exact: bool) -> None:
        # What ChangeList.get_results derived from the estimate, derived again from ``count``.
        self.result_count_is_estimate = not exact
        self.result_count = count
        self.paginator.count = count  # replaces the cached estimate
        self.multi_page = count > self.list_per_page
        self.can_show_all = count <= self.list_max_show_all
