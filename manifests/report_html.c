/* report_html: HTML + inline SVG.  Charts are drawn here in a few dozen
 * lines each rather than with a charting library so the page works offline
 * and renders identically everywhere.  All names that came from data (keys,
 * source names, reasons) are HTML-escaped.  A 64 MiB cap bounds the page. */
#include "report_html.h"

#include "stats.h"

#include "core/vc_buf.h"
#include "core/vc_fs.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_MAX_BYTES (64u << 20)

/* Palette for series (one colour per source in comparisons). */
static const char *const colours[] = { "#3b6fb6", "#e07b39", "#3a9a5b", "#b5443c",
                                       "#7b5ea7", "#8c6d31", "#d16ba5", "#5f6b6d" };
enum { N_COLOURS = sizeof colours / sizeof colours[0] };

static const char *page_css =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}"
    "h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}"
    ".cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;"
    "padding:8px 14px;min-width:110px}.card b{display:block;font-size:20px}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:16px}"
    "figure{margin:0;border:1px solid #eee;border-radius:6px;padding:8px}"
    "figcaption{font-weight:600;margin-bottom:4px}table{border-collapse:collapse;width:100%}"
    "td,th{border-bottom:1px solid #eee;padding:3px 8px;text-align:left;vertical-align:top}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}code{font-size:12px}"
    "svg text{font:11px system-ui,sans-serif;fill:#444}p.pct{margin:2px 0;font-size:12px}";

static uint64_t counter_of(const struct stats *s, const char *group, const char *family,
                           const char *name)
{
    return stats_counter(s, group, family, name);
}

/* Compact axis labels: 1200 -> "1.2k", 3e6 -> "3M". */
static void fmt_num(char *out, size_t cap, double v)
{
    double a = fabs(v);
    if (a >= 1e9)
        snprintf(out, cap, "%.3gG", v / 1e9);
    else if (a >= 1e6)
        snprintf(out, cap, "%.3gM", v / 1e6);
    else if (a >= 1e3)
        snprintf(out, cap, "%.3gk", v / 1e3);
    else
        snprintf(out, cap, "%.3g", v);
}

struct bar {
    const char *label;
    double value;
    const char *colour;
};

/* A horizontal bar chart: one row per bar, value printed at the bar end. */
static void svg_hbars(struct vc_buf *b, const struct bar *bars, size_t n, int width)
{
    const int row = 22, label_w = width > 400 ? 190 : 110;
    double max = 0;
    for (size_t i = 0; i < n; i++)
        if (bars[i].value > max)
            max = bars[i].value;
    vc_buf_printf(b, "<svg class=\"chart\" width=\"%d\" height=\"%zu\" role=\"img\">", width,
                  n * (size_t)row + 4);
    for (size_t i = 0; i < n; i++) {
        double w = max > 0 ? bars[i].value / max * (width - label_w - 80) : 0;
        int y = (int)i * row;
        vc_buf_printf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", label_w - 6, y + 15);
        vc_buf_append_html(b, bars[i].label);
        vc_buf_printf(b,
                      "</text><rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\">"
                      "<title>%.0f</title></rect><text x=\"%.1f\" y=\"%d\">%.0f</text>",
                      label_w, y + 3, w, row - 6, bars[i].colour, bars[i].value, label_w + w + 4,
                      y + 15, bars[i].value);
    }
    vc_buf_append(b, "</svg>", 6);
}

/* A histogram as vertical bars, under/overflow bins drawn at both ends. */
static void svg_hist(struct vc_buf *b, const struct stats_hist_view *h, const char *colour)
{
    const int width = 340, height = 160, pad_l = 36, pad_b = 28, pad_r = 18;
    int nb = h->n_bins + 2;
    uint64_t max = 0;
    for (int i = 0; i < nb; i++)
        if (h->counts[i] > max)
            max = h->counts[i];
    double bw = (double)(width - pad_l - pad_r) / nb;
    vc_buf_printf(b, "<svg class=\"chart\" width=\"%d\" height=\"%d\" role=\"img\">", width,
                  height);
    vc_buf_printf(b,
                  "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\"/>"
                  "<text x=\"2\" y=\"12\">%llu</text>",
                  pad_l, height - pad_b, width - 4, height - pad_b, (unsigned long long)max);
    for (int i = 0; i < nb; i++) {
        double hgt = max ? (double)h->counts[i] / (double)max * (height - pad_b - 16) : 0;
        double x = pad_l + i * bw;
        char lo[32], hi[32];
        fmt_num(lo, sizeof lo, i == 0 ? -INFINITY : stats_hist_edge(h, i - 1));
        fmt_num(hi, sizeof hi, i == nb - 1 ? INFINITY : stats_hist_edge(h, i));
        vc_buf_printf(b,
                      "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                      "<title>[%s, %s): %llu</title></rect>",
                      x, height - pad_b - hgt, bw > 1.5 ? bw - 1 : bw, hgt, colour, lo, hi,
                      (unsigned long long)h->counts[i]);
    }
    /* Five labelled ticks along the regular bins. */
    for (int t = 0; t <= 4; t++) {
        int bin = t * h->n_bins / 4;
        char lab[32];
        fmt_num(lab, sizeof lab, stats_hist_edge(h, bin));
        vc_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"%s\">%s</text>",
                      pad_l + (bin + 1) * bw, height - pad_b + 14, t == 4 ? "end" : "middle", lab);
    }
    vc_buf_printf(b, "<text x=\"%d\" y=\"%d\">n=%llu mean=%.4g min=%.4g max=%.4g%s</text></svg>", 4,
                  height - 2, (unsigned long long)h->n, h->n ? h->sum / (double)h->n : 0, h->min,
                  h->max, h->log_scale ? " (log)" : "");
    vc_buf_printf(b, "<p class=\"pct\">");
    for (int p = 0; p < STATS_N_PERCENTILES; p++)
        vc_buf_printf(b, "%sp%d&nbsp;%.4g", p ? " &middot; " : "", stats_percentiles[p],
                      stats_hist_percentile(h, stats_percentiles[p] / 100.0));
    vc_buf_printf(b, "</p>");
}

/* What the last funnel step is called: "written" for a run (its ledger
 * says what was written), "readable" for shards audited without one,
 * which this tool read but did not write. */
static const char *kept_name(const struct stats *s)
{
    return counter_of(s, "all", "funnel", "readable") && !counter_of(s, "all", "funnel", "written")
               ? "readable"
               : "written";
}

static void section_summary(struct vc_buf *b, const struct stats *s)
{
    const char *const names[] = { "input", kept_name(s), "rejected", "duplicate", "error" };
    vc_buf_printf(b, "<h2>Summary</h2><div class=\"cards\">");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        vc_buf_printf(b, "<div class=\"card\">%s<b>%llu</b></div>", names[i],
                      (unsigned long long)counter_of(s, "all", "funnel", names[i]));
    vc_buf_printf(b, "</div>");
}

/* The funnel: input, one bar per rejection cause, what is left. */
static void section_funnel(struct vc_buf *b, const struct stats *s, long all)
{
    size_t nc = stats_counter_count(s, (size_t)all);
    struct bar *bars = calloc(nc + 3, sizeof *bars);
    if (!bars) {
        b->failed = 1;
        return;
    }
    size_t n = 0;
    bars[n++] =
        (struct bar){ "input", (double)counter_of(s, "all", "funnel", "input"), colours[0] };
    for (size_t i = 0; i < nc; i++) {
        struct stats_counter_view c;
        stats_counter_at(s, (size_t)all, i, &c);
        int is_loss = strcmp(c.family, "reject") == 0 || strcmp(c.family, "error") == 0;
        if (is_loss)
            bars[n++] = (struct bar){ c.name, (double)c.count,
                                      strcmp(c.family, "error") == 0 ? colours[3] : colours[1] };
    }
    bars[n++] = (struct bar){ "duplicate", (double)counter_of(s, "all", "funnel", "duplicate"),
                              colours[4] };
    bars[n++] = (struct bar){ kept_name(s), (double)counter_of(s, "all", "funnel", kept_name(s)),
                              colours[2] };
    vc_buf_printf(b, "<h2>Funnel</h2><figure id=\"funnel\"><figcaption>Where the input samples "
                     "went (orange: filters, red: errors)</figcaption>");
    svg_hbars(b, bars, n, 720);
    vc_buf_printf(b, "</figure>");
    free(bars);
}

static void section_categories(struct vc_buf *b, const struct stats *s, long all,
                               const char *family, const char *title)
{
    size_t nc = stats_counter_count(s, (size_t)all);
    struct bar *bars = calloc(nc ? nc : 1, sizeof *bars);
    if (!bars) {
        b->failed = 1;
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < nc; i++) {
        struct stats_counter_view c;
        stats_counter_at(s, (size_t)all, i, &c);
        if (strcmp(c.family, family) == 0) {
            bars[n] = (struct bar){ c.name, (double)c.count, colours[n % N_COLOURS] };
            n++;
        }
    }
    if (n) {
        vc_buf_printf(b, "<figure><figcaption>%s</figcaption>", title);
        svg_hbars(b, bars, n, 330);
        vc_buf_printf(b, "</figure>");
    }
    free(bars);
}

static void section_histograms(struct vc_buf *b, const struct stats *s, long all)
{
    vc_buf_printf(b, "<h2>Distributions</h2><div class=\"grid\">");
    for (size_t i = 0; i < stats_hist_count(s, (size_t)all); i++) {
        struct stats_hist_view h;
        stats_hist_at(s, (size_t)all, i, &h);
        vc_buf_printf(b, "<figure class=\"hist\"><figcaption>");
        vc_buf_append_html(b, h.name);
        vc_buf_printf(b, "</figcaption>");
        svg_hist(b, &h, colours[0]);
        vc_buf_printf(b, "</figure>");
    }
    vc_buf_printf(b, "</div>");
}

/* Per-source comparison: the funnel of each source side by side, and the
 * mean of every histogram per source. */
static void section_sources(struct vc_buf *b, const struct stats *s)
{
    size_t ng = stats_group_count(s), n_src = 0;
    for (size_t g = 0; g < ng; g++)
        n_src += strncmp(stats_group_name(s, g), "source:", 7) == 0;
    if (n_src == 0)
        return;
    const char *const stages[] = { "input", kept_name(s), "rejected", "duplicate", "error" };
    vc_buf_printf(b, "<h2>Sources</h2><figure id=\"sources\"><figcaption>Funnel per source"
                     "</figcaption><table><tr><th>source</th>");
    for (size_t k = 0; k < 5; k++)
        vc_buf_printf(b, "<th>%s</th>", stages[k]);
    vc_buf_printf(b, "<th>share of output</th></tr>");
    double total_written = (double)counter_of(s, "all", "funnel", stages[1]);
    struct bar *bars = calloc(n_src, sizeof *bars);
    if (!bars) {
        b->failed = 1;
        return;
    }
    size_t k = 0;
    for (size_t g = 0; g < ng; g++) {
        const char *name = stats_group_name(s, g);
        if (strncmp(name, "source:", 7) != 0)
            continue;
        vc_buf_printf(b, "<tr><td>");
        vc_buf_append_html(b, name + 7);
        vc_buf_printf(b, "</td>");
        for (size_t j = 0; j < 5; j++)
            vc_buf_printf(b, "<td class=\"n\">%llu</td>",
                          (unsigned long long)counter_of(s, name, "funnel", stages[j]));
        double w = (double)counter_of(s, name, "funnel", stages[1]);
        vc_buf_printf(b, "<td class=\"n\">%.1f%%</td></tr>",
                      total_written > 0 ? 100.0 * w / total_written : 0.0);
        bars[k] = (struct bar){ name + 7, w, colours[k % N_COLOURS] };
        k++;
    }
    vc_buf_printf(b, "</table>");
    svg_hbars(b, bars, k, 720);
    vc_buf_printf(b, "</figure><div class=\"grid\">");
    free(bars);
    for (size_t g = 0, c = 0; g < ng; g++) {
        const char *name = stats_group_name(s, g);
        if (strncmp(name, "source:", 7) != 0)
            continue;
        for (size_t i = 0; i < stats_hist_count(s, g); i++) {
            struct stats_hist_view h;
            stats_hist_at(s, g, i, &h);
            vc_buf_printf(b, "<figure class=\"hist\"><figcaption>");
            vc_buf_append_html(b, name + 7);
            vc_buf_printf(b, ": ");
            vc_buf_append_html(b, h.name);
            vc_buf_printf(b, "</figcaption>");
            svg_hist(b, &h, colours[c % N_COLOURS]);
            vc_buf_printf(b, "</figure>");
        }
        c++;
    }
    vc_buf_printf(b, "</div>");
}

/* One row per audited shard (groups "shard:<path>", family "shard", as
 * `vlmcurate stats` records them): which shard holds the unreadable
 * samples, which one is oddly small, large or short of text. */
static void section_shards(struct vc_buf *b, const struct stats *s)
{
    size_t ng = stats_group_count(s);
    bool any = false;
    for (size_t g = 0; g < ng; g++) {
        const char *name = stats_group_name(s, g);
        if (strncmp(name, "shard:", 6) != 0)
            continue;
        if (!any)
            vc_buf_printf(b, "<h2>Shards</h2><figure id=\"shards\"><figcaption>Per shard"
                             "</figcaption><table><tr><th>shard</th><th>samples</th>"
                             "<th>unreadable</th><th>images</th><th>MB</th><th>texts</th>"
                             "<th>mean text characters</th></tr>");
        any = true;
        uint64_t texts = counter_of(s, name, "shard", "texts");
        vc_buf_printf(b, "<tr><td>");
        vc_buf_append_html(b, name + 6);
        vc_buf_printf(
            b,
            "</td><td class=\"n\">%llu</td><td class=\"n\">%llu</td>"
            "<td class=\"n\">%llu</td><td class=\"n\">%.2f</td>"
            "<td class=\"n\">%llu</td><td class=\"n\">%.1f</td></tr>",
            (unsigned long long)counter_of(s, name, "shard", "samples"),
            (unsigned long long)counter_of(s, name, "shard", "unreadable"),
            (unsigned long long)counter_of(s, name, "shard", "images"),
            (double)counter_of(s, name, "shard", "bytes") / 1e6, (unsigned long long)texts,
            texts ? (double)counter_of(s, name, "shard", "text_chars") / (double)texts : 0.0);
    }
    if (any)
        vc_buf_printf(b, "</table></figure>");
}

static int by_count_desc(const void *a, const void *b)
{
    const struct stats_counter_view *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    int r = strcmp(x->family, y->family);
    return r ? r : strcmp(x->name, y->name);
}

static void section_reasons(struct vc_buf *b, const struct stats *s, long all)
{
    size_t nc = stats_counter_count(s, (size_t)all), n = 0;
    struct stats_counter_view *rows = calloc(nc ? nc : 1, sizeof *rows);
    if (!rows) {
        b->failed = 1;
        return;
    }
    for (size_t i = 0; i < nc; i++) {
        stats_counter_at(s, (size_t)all, i, &rows[n]);
        if (strcmp(rows[n].family, "reject") == 0 || strcmp(rows[n].family, "error") == 0)
            n++;
    }
    qsort(rows, n, sizeof *rows, by_count_desc);
    vc_buf_printf(b, "<h2>Top rejection and error reasons</h2><table id=\"reasons\"><tr><th>kind"
                     "</th><th>reason</th><th>count</th><th>example keys</th></tr>");
    for (size_t i = 0; i < n && i < 30; i++) {
        vc_buf_printf(b, "<tr><td>%s</td><td>", rows[i].family);
        vc_buf_append_html(b, rows[i].name);
        vc_buf_printf(b, "</td><td class=\"n\">%llu</td><td>", (unsigned long long)rows[i].count);
        for (int e = 0; e < rows[i].n_examples; e++) {
            vc_buf_printf(b, "%s<code>", e ? " " : "");
            vc_buf_append_html(b, rows[i].examples[e]);
            vc_buf_printf(b, "</code>");
        }
        vc_buf_printf(b, "</td></tr>");
    }
    vc_buf_printf(b, "</table>");
    free(rows);
}

enum vc_status report_html_write(const struct stats *s, const char *title, const char *path,
                                 struct vc_err *err)
{
    struct vc_buf b;
    vc_buf_init(&b, REPORT_MAX_BYTES);
    vc_buf_printf(&b, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                      "<title>");
    vc_buf_append_html(&b, title);
    vc_buf_printf(&b, "</title><style>%s</style></head><body><h1>", page_css);
    vc_buf_append_html(&b, title);
    vc_buf_printf(&b, "</h1>");
    long all = stats_group_find(s, "all");
    if (all < 0) {
        vc_buf_printf(&b, "<p>No samples were seen.</p>");
    } else {
        section_summary(&b, s);
        section_funnel(&b, s, all);
        vc_buf_printf(&b, "<h2>Categories</h2><div class=\"grid\">");
        section_categories(&b, s, all, "format", "Image format");
        section_categories(&b, s, all, "language",
                           "Language (und: text too short or TextCat unsure)");
        section_categories(&b, s, all, "source", "Samples per source");
        section_categories(&b, s, all, "dropped_image",
                           "Images dropped from kept documents, by reason");
        vc_buf_printf(&b, "</div>");
        section_histograms(&b, s, all);
        section_sources(&b, s);
        section_shards(&b, s);
        section_reasons(&b, s, all);
    }
    /* The one script: marks on <body> how many charts exist and how many
     * have a laid-out size, so a headless browser test can tell a page
     * that renders from one that merely parses. */
    vc_buf_printf(&b,
                  "<p><small>vlmcurate %s, schema %s</small></p><script>(function(){"
                  "var s=document.querySelectorAll('svg.chart'),ok=0;"
                  "for(var i=0;i<s.length;i++){var r=s[i].getBoundingClientRect();"
                  "if(r.width>0&&r.height>0)ok++;}"
                  "document.body.setAttribute('data-charts',s.length);"
                  "document.body.setAttribute('data-rendered',ok);})();</script>"
                  "</body></html>\n",
                  VC_VERSION, STATS_SCHEMA);
    enum vc_status rc;
    if (b.failed)
        rc = vc_err_set(err, VC_EFATAL, VC_REASON_out_of_memory,
                        "report for %s exceeds %u bytes or memory", path, REPORT_MAX_BYTES);
    else
        rc = vc_fs_write_atomic(path, b.data, b.len, err);
    vc_buf_free(&b);
    return rc;
}
