/* report_html: renders merged stats as one self-contained HTML page (inline
 * CSS and SVG, no script or font from the network) that a person opens in
 * a browser: the funnel, the distributions with their percentiles,
 * categorical breakdowns, the per-source comparison of a mixture, the
 * per-shard table of an audit, and the top rejection reasons with example
 * keys. */
#ifndef VC_MANIFESTS_REPORT_HTML_H
#define VC_MANIFESTS_REPORT_HTML_H

#include "core/vc_err.h"

struct stats;

/* Writes the page to `path` atomically.  `title` is shown as the heading. */
enum vc_status report_html_write(const struct stats *s, const char *title, const char *path,
                                 struct vc_err *err);

#endif
