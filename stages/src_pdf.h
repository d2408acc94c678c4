/* src_pdf: the "pdf" source: PDF files, one sample per page, rendered
 * through poppler-glib's C API onto a cairo image surface (no program is
 * spawned per page):
 *
 *   {"name": "papers", "type": "pdf", "urls": "pdfs/{a,b,c}.pdf", "dpi": 150,
 *    "first_page": 1, "last_page": 0}      // 1-based, inclusive; 0 = the last
 *
 * A file is one unit.  A page becomes the sample "<file stem>_p<NNNN>"
 * (1-based page number) with fields "png" (the page on white, RGB) and
 * "json" {"pdf": file name, "page": n, "pages": total, "dpi": dpi,
 * "width_pt", "height_pt"}.  A page whose rendering would exceed the
 * pixel limits is an image_too_large error before any pixel is allocated;
 * a file poppler cannot open is one corrupt_archive error for the unit. */
#ifndef VC_STAGES_SRC_PDF_H
#define VC_STAGES_SRC_PDF_H

#include "source.h"

extern const struct source_ops src_pdf_ops;

#endif
