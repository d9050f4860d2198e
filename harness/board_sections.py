"""The sections of a leaderboard's pages below its ranked table: calibration results (``prmh
analyze calibration`` records) and reproductions (``prmh reproduce`` records), in Markdown and
HTML. Every text from a record is escaped: records are files from strangers."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from prmh.options import is_number

_MARKDOWN = re.compile(r"([\\`*_\[\]|#!])")


def md(text: Any) -> str:
    """Text from a record, safe inside a Markdown table cell: no markup, no raw HTML, no
    line breaks."""
    flat = " ".join(str(text).split())
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN.sub(r"\\\1", flat)


def gather(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The calibration results and reproductions among a board's records."""
    calibration = [
        {"run_id": r["run_id"], **c}
        for r in records
        for c in (r.get("metrics") or {}).get("calibration", [])
    ]
    keys = ("name", "release", "claim", "size", "comparisons", "verdict")
    reproductions = [
        {"run_id": r["run_id"], **{k: r["metrics"][k] for k in keys}}
        for r in records
        if (r.get("config") or {}).get("command") == "reproduce"
    ]
    return {"calibration": calibration, "reproductions": reproductions}


VERDICTS = ("reversed", "not reproduced", "direction only", "reproduced")


def reproduction_problems(record: dict[str, Any]) -> list[str]:
    """What a ``prmh reproduce`` record lacks to join a board's reproductions."""
    metrics = record.get("metrics") or {}
    texts = ("name", "release", "claim", "size")
    if not all(isinstance(metrics.get(k), str) for k in texts):
        return ["a reproduction without its name, release, claim and size"]
    if metrics.get("verdict") not in VERDICTS:
        return [f"a reproduction whose verdict {metrics.get('verdict')!r} is not one of prmh's"]
    comparisons = metrics.get("comparisons")
    sides = [c.get(s) for c in comparisons if isinstance(c, dict) for s in ("better", "worse")]
    ok = (
        isinstance(comparisons, list)
        and comparisons
        and all(isinstance(c, dict) and c.get("verdict") in VERDICTS for c in comparisons)
        and len(sides) == 2 * len(comparisons)
        and all(
            isinstance(x, dict)
            and isinstance(x.get("label"), str)
            and all(isinstance(x.get(k), int | float) for k in ("mean", "low", "high"))
            for x in sides
        )
    )
    return [] if ok else ["a reproduction whose comparisons are malformed"]


def _side(e: dict[str, Any]) -> str:
    return f"{e['label']} {e['mean']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"


def _comparisons(item: dict[str, Any]) -> list[str]:
    sign = {"beats": ">", "matches": ">="}
    return [
        f"{_side(c['better'])} {sign.get(c['kind'], '?')} {_side(c['worse'])}"
        f"{_paired(c.get('difference'))}: {c['verdict']}"
        for c in item["comparisons"]
    ]


def _paired(d: Any) -> str:
    """The paired difference a comparison was decided on, if it was paired."""
    if not isinstance(d, dict) or not all(is_number(d.get(k)) for k in ("mean", "low", "high")):
        return ""
    return f" (paired difference {d['mean']:+.3f} [{d['low']:.3f}, {d['high']:.3f}])"


def md_links(data: dict[str, Any]) -> list[str]:
    links = [
        f"[{title}](#{anchor}): {len(data[key])} entries below."
        for key, title, anchor in (
            ("calibration", "Calibration", "calibration"),
            ("reproductions", "Reproductions", "reproductions"),
        )
        if data.get(key)
    ]
    return [*links, ""] if links else []


def md_sections(data: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if data.get("calibration"):
        lines += [
            "",
            "## Calibration",
            "",
            "| record | PRM | metric | value |",
            "|---|---|---|---|",
        ]
        for c in data["calibration"]:
            for metric in sorted(k for k in c if k not in ("run_id", "prm")):
                lines.append(
                    f"| {md(c['run_id'])} | {md(c.get('prm', ''))} | {md(metric)} | "
                    f"{md(c[metric])} |"
                )
    if data.get("reproductions"):
        lines += ["", "## Reproductions", "", "| record | release | claim | size | comparisons "
                  "| verdict |", "|---|---|---|---|---|---|"]  # fmt: skip
        for r in data["reproductions"]:
            compared = "; ".join(md(c) for c in _comparisons(r))
            lines.append(
                f"| {md(r['run_id'])} | {md(r['release'])} | {md(r['claim'])} | {md(r['size'])} "
                f"| {compared} | {md(r['verdict'])} |"
            )
    return lines


def _warned(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(run id, warning) of every row's warnings, once each (a PRM's rows share them)."""
    return list(dict.fromkeys((r["run_id"], w) for r in data["rows"] for w in r["warnings"]))


def md_warnings(data: dict[str, Any]) -> list[str]:
    warned = _warned(data)
    if not warned:
        return []
    lines = ["", "## Warnings", "", "What `prmh eval` printed below these rows' tables:", ""]
    return lines + [f"- {md(run_id)}: {md(w)}" for run_id, w in warned]


def html_warnings(data: dict[str, Any]) -> str:
    warned = _warned(data)
    if not warned:
        return ""
    e = html.escape
    items = "".join(f"<li>{e(run_id)}: {e(w)}</li>" for run_id, w in warned)
    return (
        '<h2 id="warnings">Warnings</h2><p>What <code>prmh eval</code> printed below these '
        f"rows' tables:</p><ul>{items}</ul>"
    )


def html_links(data: dict[str, Any]) -> str:
    out = ""
    if data.get("calibration"):
        runs = len({c["run_id"] for c in data["calibration"]})
        out += f'<p><a href="#calibration">Calibration</a> of PRMs from {runs} record(s) below.</p>'
    if data.get("reproductions"):
        n = len(data["reproductions"])
        out += f'<p><a href="#reproductions">Reproductions</a> of releases\' claims: {n} below.</p>'
    return out


def html_sections(data: dict[str, Any]) -> str:
    out = ""
    e = html.escape
    if data.get("calibration"):
        rows_html = "".join(
            f'<tr><td class="l">{e(str(c["run_id"]))}</td><td class="l">'
            f'{e(str(c.get("prm", "")))}</td><td class="l">{e(m)}</td>'
            f"<td>{e(json.dumps(c[m]))}</td></tr>"
            for c in data["calibration"]
            for m in sorted(k for k in c if k not in ("run_id", "prm"))
        )
        out += (
            '<h2 id="calibration">Calibration</h2><table><thead><tr><th class="l">record</th>'
            '<th class="l">PRM</th><th class="l">metric</th><th>value</th></tr>'
            f"</thead><tbody>{rows_html}</tbody></table>"
        )
    if data.get("reproductions"):
        rows_html = "".join(
            f'<tr><td class="l">{e(str(r["run_id"]))}</td><td class="l">{e(str(r["release"]))}'
            f'</td><td class="l">{e(str(r["claim"]))}</td><td class="l">{e(str(r["size"]))}</td>'
            f'<td class="l">{"<br>".join(e(c) for c in _comparisons(r))}</td>'
            f'<td class="l">{e(str(r["verdict"]))}</td></tr>'
            for r in data["reproductions"]
        )
        out += (
            '<h2 id="reproductions">Reproductions</h2><table><thead><tr><th class="l">record'
            '</th><th class="l">release</th><th class="l">claim</th><th class="l">size</th>'
            '<th class="l">comparisons</th><th class="l">verdict</th></tr>'
            f"</thead><tbody>{rows_html}</tbody></table>"
        )
    return out
