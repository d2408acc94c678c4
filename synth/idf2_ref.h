/* idf2_ref: the scalar reference row of the backend table (synth/
 * idf2_backend.h): plain loops with double accumulation, every operation and
 * every weight format.  Slow on purpose and simple enough to check by
 * reading; the golden tests and the per-row oracle test run against it. */
#ifndef VC_SYNTH_IDF2_REF_H
#define VC_SYNTH_IDF2_REF_H

#include "synth/idf2_backend.h"

extern const struct idf2_ops idf2_ref_ops;

#endif
