"""Just enough of PromQL to check alert rules and dashboards against a real scrape: the series
selectors an expression names (metric, label matchers), the labels it groups by, and the
functions it calls. Prometheus itself is not installed here (promtool is no Python package)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FUNCTIONS = frozenset(
    {
        "abs", "absent", "absent_over_time", "avg", "avg_over_time", "ceil", "changes",
        "clamp", "clamp_max", "clamp_min", "count", "count_over_time", "delta", "deriv",
        "floor", "group", "histogram_quantile", "increase", "irate", "label_replace", "max",
        "max_over_time", "min", "min_over_time", "predict_linear", "quantile", "rate",
        "resets", "round", "scalar", "sort", "sort_desc", "stddev", "sum", "sum_over_time",
        "time", "timestamp", "topk", "bottomk", "vector",
    }
)  # fmt: skip
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}")
MATCHER = re.compile(r'\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
IDENTIFIER = re.compile(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?")
RANGE = re.compile(r"\[\s*\d+[smhdwy]\s*(?::\s*\d+[smhdwy]\s*)?\]")
DURATION = re.compile(r"^\d+[smhdwy]$")


class PromQLError(ValueError):
    """An expression this checker cannot accept."""


@dataclass
class Selector:
    metric: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Parsed:
    selectors: list[Selector]
    grouping_labels: set[str]


def parse(expr: str) -> Parsed:
    """The selectors and grouping labels of `expr`; a `PromQLError` for what is not PromQL."""
    if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
        raise PromQLError(f"unbalanced brackets: {expr}")
    selectors: list[Selector] = []
    rest = RANGE.sub(" ", expr)
    if "[" in rest or "]" in rest:
        raise PromQLError(f"a range that is not [<duration>]: {expr}")

    def matchers(match: re.Match[str]) -> str:
        body, position, found = match.group(2).strip(), 0, []
        for matcher in MATCHER.finditer(body):
            if matcher.start() != position:
                break
            found.append((matcher.group(1), matcher.group(2), matcher.group(3)))
            position = matcher.end()
        if position != len(body):
            raise PromQLError(f"label matchers not understood: {{{body}}}")
        if match.group(1) is None:
            raise PromQLError(f"a selector without a metric name: {expr}")
        selectors.append(Selector(match.group(1), found))
        return " __selected__ "

    rest = SELECTOR.sub(matchers, rest)
    grouping = {
        label.strip()
        for _, labels in GROUPING.findall(rest)
        for label in labels.split(",")
        if label.strip()
    }
    rest = GROUPING.sub(" ", rest)
    for name, call in IDENTIFIER.findall(rest):
        if name == "__selected__" or name in KEYWORDS:
            continue
        if call:
            if name not in FUNCTIONS:
                raise PromQLError(f"unknown function {name}(): {expr}")
            continue
        selectors.append(Selector(name))
    return Parsed(selectors, grouping)
