"""The change-set report as one self-contained HTML page (issue 7 part 1).

Opening it needs no network: the CSS and the filter script are inline, and the only links are the
provenance links to each source document's real URL. Everything taken from the rulebook is escaped,
since source text is untrusted (a descriptor or a locator may hold ``<script>``); a provenance URL is
linked only when it is http(s).

Layout: counts at the top (by severity, substantive or cosmetic, retroactive, category), the
quarantined and stale sources, filters (source, severity, code), then the changes grouped by source
-> policy or table -> code. Each change row carries ``data-*`` attributes the filters (and tests)
read: ``data-source``, ``data-kind``, ``data-severity``, ``data-code``, ``data-substantive``,
``data-retroactive``.

Building blocks for other pages (``policysync serve`` reuses them): :data:`CSS`, :data:`SCRIPT`,
:func:`render_counts`, :func:`render_guards`, :func:`render_filters`, :func:`render_groups`, and
:func:`render_html` with ``standalone=False`` for the fragment without ``<html>``, CSS or script.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

from rulebook.diff import Change, ChangeSet, grouped

SEVERITIES = ("high", "medium", "low")

#: More changes than this make a page no browser opens usefully (a first PTP load is 2.6 million);
#: ``policysync diff --format html`` refuses and points to --source and the other formats.
HTML_LIMIT = 200_000

CSS = """
.ps-changeset{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1f24;margin:1.5rem}
.ps-changeset h1{font-size:1.4rem;margin:0 0 .75rem}
.ps-changeset h2{font-size:1.15rem;margin:1.5rem 0 .5rem;border-bottom:2px solid #d0d7de}
.ps-changeset h3{font-size:1rem;margin:1rem 0 .4rem}
.ps-counts{display:flex;flex-wrap:wrap;align-items:flex-start;gap:.5rem 2rem;margin:.5rem 0 1rem}
.ps-counts dl{margin:0;display:grid;grid-template-columns:auto auto;gap:0 .75rem}
.ps-counts dt{color:#57606a}.ps-counts dd{margin:0;font-weight:600;text-align:right}
.ps-alert{padding:.4rem .7rem;margin:.3rem 0;border-left:4px solid}
.ps-quarantine{background:#fff1f0;border-color:#cf222e}.ps-stale{background:#fff8c5;border-color:#bf8700}
.ps-filters{position:sticky;top:0;background:#f6f8fa;padding:.5rem;display:flex;gap:1rem;
 align-items:center;flex-wrap:wrap;border:1px solid #d0d7de;z-index:1}
table.ps-changes{border-collapse:collapse;width:100%;margin-bottom:.5rem}
table.ps-changes th,table.ps-changes td{border:1px solid #d0d7de;padding:.25rem .4rem;vertical-align:top;
 text-align:left}
table.ps-changes th{background:#f6f8fa}
table.ps-fields{border-collapse:collapse}table.ps-fields td,table.ps-fields th{border:0;padding:0 .4rem 0 0}
.ps-before{color:#82071e;text-decoration:line-through}.ps-after{color:#116329}
.ps-sev{font-weight:600;text-transform:uppercase;font-size:.8rem}
tr.sev-high .ps-sev{color:#cf222e}tr.sev-medium .ps-sev{color:#9a6700}tr.sev-low .ps-sev{color:#57606a}
.ps-retro{background:#cf222e;color:#fff;border-radius:3px;padding:0 .3rem;font-size:.75rem;font-weight:600}
.ps-cosmetic{color:#57606a;font-style:italic}
.ps-sha{font-size:.75rem;word-break:break-all;color:#57606a}
.ps-prov{min-width:14rem;max-width:24rem;overflow-wrap:anywhere}
.ps-code{font-family:ui-monospace,monospace;white-space:nowrap}
[hidden]{display:none!important}
"""

# Plain JS, no library: hides rows that do not match, then groups left with no visible row, and
# updates the "shown" count. Runs over 10,000 rows in well under a second. The filters are kept in
# the URL fragment (#severity=high&code=J9), so a filtered view can be linked or bookmarked.
SCRIPT = """
(function () {
  var KEYS = ['source', 'severity', 'code'];
  function readHash(root) {
    var params = new URLSearchParams(location.hash.replace(/^#/, ''));
    KEYS.forEach(function (k) {
      var el = root.querySelector('.ps-f-' + k);
      if (el && params.has(k)) el.value = params.get(k);
    });
  }
  function writeHash(root) {
    var params = new URLSearchParams();
    KEYS.forEach(function (k) {
      var v = root.querySelector('.ps-f-' + k).value;
      if (v) params.set(k, v);
    });
    try { history.replaceState(null, '', '#' + params.toString()); } catch (e) { /* file: in some browsers */ }
  }
  function apply(root) {
    var src = root.querySelector('.ps-f-source').value;
    var sev = root.querySelector('.ps-f-severity').value;
    var code = root.querySelector('.ps-f-code').value.trim().toUpperCase();
    var rows = root.querySelectorAll('tr.ps-change');
    var shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var d = rows[i].dataset;
      var ok = (!src || d.source === src) && (!sev || d.severity === sev) &&
               (!code || d.code.toUpperCase().indexOf(code) !== -1);
      rows[i].hidden = !ok;
      if (ok) shown++;
    }
    var groups = root.querySelectorAll('.ps-table, .ps-source');
    for (var j = 0; j < groups.length; j++) {
      groups[j].hidden = !groups[j].querySelector('tr.ps-change:not([hidden])');
    }
    root.querySelector('.ps-shown').textContent = shown;
  }
  function init() {
    var roots = document.querySelectorAll('.ps-changeset');
    for (var k = 0; k < roots.length; k++) {
      (function (root) {
        var inputs = root.querySelectorAll('.ps-filters select, .ps-filters input');
        for (var m = 0; m < inputs.length; m++) {
          inputs[m].addEventListener('input', function () { apply(root); writeHash(root); });
          inputs[m].addEventListener('change', function () { apply(root); writeHash(root); });
        }
        readHash(root);
        apply(root);
      })(roots[k]);
    }
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init); else init();
})();
"""


def _e(v: Any) -> str:
    """Text or attribute value, escaped (quotes too)."""
    return escape("" if v is None else str(v), quote=True)


def _value(v: Any) -> str:
    if v is None:
        return '<span class="ps-none">(none)</span>'
    return _e(v)


def _link(url: Any, text: str) -> str:
    """``text`` (already escaped) linked to ``url`` when it is http(s); never a javascript: URL."""
    if isinstance(url, str) and re.match(r"https?://", url, re.IGNORECASE):
        return f'<a href="{_e(url)}" rel="noopener noreferrer">{text}</a>'
    return text


def render_counts(cs: ChangeSet) -> str:
    summary, sev = cs.summary(), cs.severity_counts()
    by_source: dict[str, int] = {}
    for c in cs.changes:
        by_source[c.source] = by_source.get(c.source, 0) + 1

    def dl(name: str, items: list[tuple[str, int]]) -> str:
        body = "".join(f'<dt>{_e(k)}</dt><dd data-count="{_e(k)}">{n:,}</dd>' for k, n in items)
        return f'<dl class="ps-count-{name}">{body}</dl>'

    return (
        '<div class="ps-counts">'
        + f'<p class="ps-total"><strong data-count="total">{summary["total"]:,}</strong> changes, '
        + f'<span class="ps-shown">{summary["total"]}</span> shown</p>'
        + dl("severity", [(s, sev[s]) for s in SEVERITIES])
        + dl("kind", [(k, summary[k]) for k in ("substantive", "cosmetic", "retroactive")])
        + dl("source", sorted(by_source.items()))
        + dl("category", list(cs.counts().items()))
        + "</div>"
    )


def render_guards(cs: ChangeSet) -> str:
    """The quarantined sources and the stale ones, one line each."""
    out = []
    for q in cs.quarantined:
        out.append(
            f'<p class="ps-alert ps-quarantine" data-source="{_e(q["source"])}">'
            f"<strong>Quarantined</strong> in version {_e(q['version_id'])}: {_e(q['message'])}. "
            "Approving needs <code>--force</code> and a <code>--note</code>.</p>"
        )
    for st in cs.stale():
        last = st.get("last_successful_fetch") or "never"
        out.append(
            f'<p class="ps-alert ps-stale" data-source="{_e(st["source"])}"><strong>Stale</strong>: '
            f"{_e(st['source'])} has had no successful fetch within 1.5 &times; its "
            f"{_e(st['cadence_days'])}-day cadence (last: {_e(last)}).</p>"
        )
    return "".join(out)


def render_filters(cs: ChangeSet) -> str:
    sources = sorted({c.source for c in cs.changes})
    src_opts = "".join(f'<option value="{_e(s)}">{_e(s)}</option>' for s in sources)
    sev_opts = "".join(f'<option value="{s}">{s}</option>' for s in SEVERITIES)
    return (
        '<form class="ps-filters" onsubmit="return false">'
        '<label>Source <select class="ps-f-source" name="source">'
        f'<option value="">all</option>{src_opts}</select></label>'
        f'<label>Severity <select class="ps-f-severity" name="severity"><option value="">all</option>{sev_opts}'
        "</select></label>"
        '<label>Code <input class="ps-f-code" name="code" type="search" placeholder="e.g. J9035"></label>'
        "</form>"
    )


def _fields(c: Change) -> str:
    """Before -> after per field; an addition shows only the new values, a removal the old ones."""
    if not c.fields:
        return ""
    befores = [ba.get("before") for ba in c.fields.values()]
    afters = [ba.get("after") for ba in c.fields.values()]
    if all(b is None for b in befores):
        rows = "".join(
            f'<tr><th>{_e(name)}</th><td class="ps-after">{_value(a)}</td></tr>'
            for name, a in zip(c.fields, afters, strict=True)
        )
    elif all(a is None for a in afters):
        rows = "".join(
            f'<tr><th>{_e(name)}</th><td class="ps-before">{_value(b)}</td></tr>'
            for name, b in zip(c.fields, befores, strict=True)
        )
    else:
        rows = "".join(
            f'<tr><th>{_e(name)}</th><td class="ps-before">{_value(b)}</td>'
            f'<td>&rarr;</td><td class="ps-after">{_value(a)}</td></tr>'
            for name, b, a in zip(c.fields, befores, afters, strict=True)
        )
    return f'<table class="ps-fields">{rows}</table>'


def _row(c: Change) -> str:
    p = c.provenance
    sha = p.get("sha256") or ""
    prov = _link(p.get("url"), _e(p.get("locator") or p.get("url") or "source document"))
    if p.get("release"):
        prov += f' <span class="ps-release">release {_e(p["release"])}</span>'
    if sha:
        prov += f'<br><code class="ps-sha" title="sha256 of the source document">sha256 {_e(sha)}</code>'
    retro = ' <span class="ps-retro" title="takes effect before the release that states it">RETROACTIVE</span>'
    kind = "substantive" if c.substantive else '<span class="ps-cosmetic">cosmetic</span>'
    return (
        f'<tr class="ps-change sev-{_e(c.severity)}" data-source="{_e(c.source)}" data-kind="{_e(c.fact_kind)}" '
        f'data-severity="{_e(c.severity)}" data-code="{_e(c.key)}" data-substantive="{int(c.substantive)}" '
        f'data-retroactive="{int(c.retroactive)}">'
        f'<td class="ps-code">{_e(c.key)}</td>'
        f'<td class="ps-sev">{_e(c.severity)}</td>'
        f'<td class="ps-cats">{_e(", ".join(c.categories))}</td>'
        f"<td>{kind}</td>"
        f'<td class="ps-eff">[{_e(c.eff_start)}, {_e(c.eff_end or "open")}){retro if c.retroactive else ""}</td>'
        f'<td class="ps-ba">{_fields(c)}</td>'
        f'<td class="ps-prov">{prov}</td>'
        "</tr>"
    )


_HEAD = (
    "<thead><tr><th>code</th><th>severity</th><th>change</th><th>substantive</th>"
    "<th>effective</th><th>before &rarr; after</th><th>provenance</th></tr></thead>"
)


def render_groups(cs: ChangeSet) -> str:
    """The changes, grouped by source -> policy or table -> code."""
    parts: list[str] = []
    for source, tables in grouped(cs).items():
        n = sum(len(rows) for rows in tables.values())
        parts.append(
            f'<section class="ps-source" data-source="{_e(source)}"><h2>{_e(source)} <small>({n:,})</small></h2>'
        )
        for label, rows in tables.items():
            parts.append(
                f'<section class="ps-table" data-group="{_e(label)}">'
                f"<h3>{_e(label)} <small>({len(rows):,})</small></h3>"
                f'<table class="ps-changes">{_HEAD}<tbody>'
            )
            parts.extend(_row(c) for c in rows)
            parts.append("</tbody></table></section>")
        parts.append("</section>")
    if not cs.changes:
        parts.append('<p class="ps-empty">No changes.</p>')
    return "".join(parts)


def title(cs: ChangeSet) -> str:
    return f"Rulebook changes: version {cs.v1} \u2192 {cs.v2}"


def render_html(cs: ChangeSet, *, standalone: bool = True) -> str:
    """The change set as HTML. ``standalone``: a whole page with its CSS and script inline (what
    ``policysync diff --format html`` writes); otherwise the ``<section class="ps-changeset">``
    fragment alone, for a page that includes :data:`CSS` and :data:`SCRIPT` itself."""
    body = (
        f'<section class="ps-changeset" data-from="{cs.v1}" data-to="{cs.v2}">'
        f"<h1>{_e(title(cs))}</h1>"
        + render_counts(cs)
        + render_guards(cs)
        + render_filters(cs)
        + render_groups(cs)
        + "</section>"
    )
    if not standalone:
        return body
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title(cs))}</title><style>{CSS}</style></head><body>"
        + body
        + f"<script>{SCRIPT}</script></body></html>\n"
    )
