"""Panel, variable and layout factories shared by the sqm dashboards (grafana-foundation-sdk builders).

Every panel and every query names the `datasource` variable: file provisioning does not resolve
`__inputs` / `${DS_...}` placeholders (only the UI import does), and a variable lets one copy of
the dashboards serve any Prometheus. Panel ids are numbered in the order panels are added, so
the JSON is the same on every run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, TypeVar

from grafana_foundation_sdk.builders import bargauge, common, stat, statetimeline, table, text, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm
from grafana_foundation_sdk.models.text import TextMode

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
ALL_OPTION = dm.VariableOption(selected=True, text="All", value="$__all")

# Threshold colours follow Grafana's palette; the value is always printed beside the colour.
GOOD, WARN, BAD, NEUTRAL = "green", "orange", "red", "blue"

Step = tuple[float, str]


def steps(base: str, *above: Step) -> db.ThresholdsConfig:
    """Absolute thresholds: `base` colour, then each (value, colour) from that value up."""
    return db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=None, color=base), *(dm.Threshold(value=v, color=c) for v, c in above)])


def higher_is_better(warning: float, good: float) -> db.ThresholdsConfig:
    return steps(BAD, (warning, WARN), (good, GOOD))


def lower_is_better(warning: float, bad: float) -> db.ThresholdsConfig:
    return steps(GOOD, (warning, WARN), (bad, BAD))


def query(expr: str, legend: str = "", *, ref: str = "A", instant: bool = False,
          as_table: bool = False) -> prom.Dataquery:
    q = prom.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        q = q.legend_format(legend)
    if as_table:
        q = q.format(pm.PromQueryFormat.TABLE)
    return q.instant() if instant else q.range()


# -- template variables -------------------------------------------------------------------------

def datasource_variable() -> db.DatasourceVariable:
    return (db.DatasourceVariable("datasource").label("Data source").type("prometheus")
            .description("The Prometheus that scrapes sqm's /metrics"))


def query_variable(name: str, label: str, query_text: str, description: str, *, regex: str = "") -> db.QueryVariable:
    """A multi-value variable with All = `.+`, re-read whenever the time range changes."""
    v = (db.QueryVariable(name).label(label).description(description).datasource(DATASOURCE)
         .query(query_text).refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
         .sort(dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
         .multi(True).include_all(True).all_value(".+").current(ALL_OPTION))
    return v.regex(regex) if regex else v


def job_variable() -> db.QueryVariable:
    return query_variable("job", "job", "label_values(sqm_view_warm, job)",
                          "The scrape job of sqm's API replicas: one job per sqm deployment. KPI series are "
                          "deduplicated over the replicas of the selected jobs (max by), so select one "
                          "deployment at a time when one Prometheus scrapes several.")


def scope_variable(kind: str) -> db.QueryVariable:
    """Names of the `<kind>:<name>` scopes, the prefix stripped by the regex.

    Read from sqm_kpi_samples, which every scope has whichever events it counts (a phone-only team
    has no ticket counters).
    """
    return query_variable(kind, kind, f'label_values(sqm_kpi_samples{{job=~"$job", kind="{kind}"}}, scope)',
                          f"{kind.capitalize()} scopes (scope label `{kind}:<name>`)", regex=f"/^{kind}:(.+)$/")


# -- panels -------------------------------------------------------------------------------------

P = TypeVar("P", stat.Panel, timeseries.Panel, table.Panel, bargauge.Panel, statetimeline.Panel, text.Panel)
PanelBuilder = stat.Panel | timeseries.Panel | table.Panel | bargauge.Panel | statetimeline.Panel | text.Panel


def _common(p: P, title: str, description: str, span: int, height: int) -> P:
    return p.title(title).description(description).datasource(DATASOURCE).span(span).height(height)


def stat_panel(title: str, description: str, expr: str, *, unit: str, thresholds: db.ThresholdsConfig,
               decimals: int | None = None, min_: float | None = None, max_: float | None = None,
               instant: bool = True, span: int = 4, height: int = 4, legend: str = "",
               mappings: Sequence[dm.ValueMapping] = ()) -> stat.Panel:
    """One big number. Instant by default: the value over `$__range` at the end of the range."""
    p = (_common(stat.Panel(), title, description, span, height)
         .with_target(query(expr, legend, instant=instant)).unit(unit).thresholds(thresholds)
         .color_mode(cm.BigValueColorMode.VALUE).graph_mode(cm.BigValueGraphMode.AREA if not instant
                                                            else cm.BigValueGraphMode.NONE)
         .text_mode(cm.BigValueTextMode.VALUE_AND_NAME if legend else cm.BigValueTextMode.VALUE)
         .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
         .no_value("No data"))
    if decimals is not None:
        p = p.decimals(decimals)
    if min_ is not None:
        p = p.min(min_)
    if max_ is not None:
        p = p.max(max_)
    if mappings:
        p = p.mappings(list(mappings))
    return p


class Series(NamedTuple):
    expr: str
    legend: str


def timeseries_panel(title: str, description: str, series: Sequence[Series], *, unit: str,
                     thresholds: db.ThresholdsConfig | None = None, min_: float | None = None,
                     max_: float | None = None, decimals: int | None = None, stack: bool = False,
                     span: int = 12, height: int = 8, calcs: Sequence[str] = ("mean", "max", "lastNotNull")
                     ) -> timeseries.Panel:
    """Lines over time with a table legend (mean, max, last); thresholds drawn as dashed lines."""
    p = _common(timeseries.Panel(), title, description, span, height).unit(unit)
    for i, s in enumerate(series):
        p = p.with_target(query(s.expr, s.legend, ref=chr(ord("A") + i)))
    p = (p.fill_opacity(10 if not stack else 60).line_width(1).show_points(cm.VisibilityMode.NEVER)
         .span_nulls(False).legend(common.VizLegendOptions().display_mode(cm.LegendDisplayMode.TABLE)
                                   .placement(cm.LegendPlacement.BOTTOM).show_legend(True).calcs(list(calcs)))
         .tooltip(common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)))
    if stack:
        p = p.stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
    if thresholds is not None:
        p = p.thresholds(thresholds).thresholds_style(
            common.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED))
    if min_ is not None:
        p = p.min(min_)
    if max_ is not None:
        p = p.max(max_)
    if decimals is not None:
        p = p.decimals(decimals)
    return p


def bargauge_panel(title: str, description: str, expr: str, legend: str, *, unit: str,
                   thresholds: db.ThresholdsConfig, min_: float, max_: float, span: int = 12,
                   height: int = 8) -> bargauge.Panel:
    """One horizontal bar per series, the value at the end of the range (instant)."""
    return (_common(bargauge.Panel(), title, description, span, height)
            .with_target(query(expr, legend, instant=True)).unit(unit).thresholds(thresholds)
            .min(min_).max(max_).display_mode(cm.BarGaugeDisplayMode.GRADIENT)
            .orientation(cm.VizOrientation.HORIZONTAL).show_unfilled(True)
            .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .no_value("No data"))


def state_panel(title: str, description: str, expr: str, legend: str, *, mappings: Sequence[dm.ValueMapping],
                thresholds: db.ThresholdsConfig, span: int = 12, height: int = 6) -> statetimeline.Panel:
    return (_common(statetimeline.Panel(), title, description, span, height)
            .with_target(query(expr, legend)).unit("none").mappings(list(mappings)).thresholds(thresholds)
            .show_value(cm.VisibilityMode.NEVER).merge_values(True).fill_opacity(80).line_width(0))


def text_panel(title: str, content: str, *, span: int = 24, height: int = 3) -> text.Panel:
    """Markdown notes. The datasource is set too, so that every panel names the variable."""
    return (_common(text.Panel(), title, "Notes on reading this dashboard", span, height)
            .mode(TextMode.MARKDOWN).content(content))


class Column(NamedTuple):
    """One column of a table panel: an instant query per scope (joined on the `by` label)."""
    name: str
    expr: str
    unit: str
    thresholds: db.ThresholdsConfig | None = None
    decimals: int | None = None


def table_panel(title: str, description: str, key: str, key_name: str, columns: Sequence[Column], *,
                sort_by: str, span: int = 24, height: int = 8) -> table.Panel:
    """One row per `key` label value: each column an instant table query, merged and renamed."""
    p = _common(table.Panel(), title, description, span, height).unit("short")
    renames: dict[str, str] = {key: key_name}
    order: dict[str, int] = {key: 0}
    for i, c in enumerate(columns):
        ref = chr(ord("A") + i)
        p = p.with_target(query(c.expr, ref=ref, instant=True, as_table=True))
        renames[f"Value #{ref}"] = c.name
        order[f"Value #{ref}"] = i + 1
        props = [dm.DynamicConfigValue(id_val="unit", value=c.unit)]
        if c.decimals is not None:
            props.append(dm.DynamicConfigValue(id_val="decimals", value=c.decimals))
        if c.thresholds is not None:
            props += [dm.DynamicConfigValue(id_val="thresholds", value=c.thresholds.build()),
                      dm.DynamicConfigValue(id_val="custom.cellOptions", value=cm.TableColorTextCellOptions())]
        p = p.override_by_name(c.name, props)
    # Transformation options are free-form in Grafana's schema (typed `object` in the SDK too)
    p = (p.with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
         .with_transformation(dm.DataTransformerConfig(id_val="organize", options={
             "excludeByName": {"Time": True}, "indexByName": order, "renameByName": renames}))
         .sort_by([common.TableSortByFieldState().display_name(sort_by).desc(True)])
         .cell_height(cm.TableCellHeight.SM).filterable(True).no_value("–"))
    return p


# -- layout -------------------------------------------------------------------------------------

class Board:
    """A dashboard being assembled: rows and panels in reading order, ids numbered from 1."""

    def __init__(self, builder: db.Dashboard) -> None:
        self.builder = builder
        self._next = 1

    def _id(self) -> int:
        n, self._next = self._next, self._next + 1
        return n

    def row(self, title: str) -> None:
        self.builder.with_row(db.Row(title).id(self._id()).collapsed(False))

    def add(self, *panels: PanelBuilder) -> None:
        for p in panels:
            self.builder.with_panel(p.id(self._id()))

    def build(self) -> dm.Dashboard:
        return self.builder.build()


def dashboard(uid: str, title: str, description: str, variables: Sequence[cogbuilder.Builder[dm.VariableModel]], *,
              time_from: str = "now-24h") -> Board:
    """The settings all sqm dashboards share: tags, links between them, refresh, shared crosshair."""
    b = (db.Dashboard(title).uid(uid).description(description).tags(["sqm"]).readonly()
         .timezone("browser").time(time_from, "now").refresh("1m")
         .tooltip(dm.DashboardCursorSync.CROSSHAIR)
         .timepicker(db.TimePicker().refresh_intervals(["30s", "1m", "5m", "15m", "1h"]))
         .link(db.DashboardLink("sqm dashboards").type(dm.DashboardLinkType.DASHBOARDS).tags(["sqm"])
               .as_dropdown(True).include_vars(True).keep_time(True).icon("external link"))
         .variables(list(variables)))
    return Board(b)
