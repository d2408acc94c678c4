/* st_score: the `score` stage, per-sample scores from the bundled Idefics2
 * model, each usable as a filter:
 *
 *   {"stage": "score", "model": "/models/idefics2-8b",
 *    "scores": ["relevance", "perplexity", "nsfw"],
 *    "filters": [{"name": "relevance", "min": -3.5},
 *                {"name": "perplexity", "max_quantile": 0.95}]}
 *
 *   relevance   mean log-likelihood per token of the sample's text (txt,
 *               caption or text) as the answer to a caption prompt about
 *               its main image;
 *   perplexity  exp(-mean log-likelihood per token) of the text alone
 *               after BOS, under the language model;
 *   nsfw        P(yes) / (P(yes) + P(no)) for a yes/no question about the
 *               image (zero-shot).
 *
 * Scores go to the sample's json under "model_scores" (and, like the
 * other model stages' results, to the unit's result cache, which is what
 * PLAN reads them from).  "min"/"max" reject in MAP (the verdict
 * names the score, its value and the threshold); "max_quantile" q rejects,
 * in PLAN over every surviving sample of the run, those whose score is
 * above the nearest-rank q-quantile of all of them. */
#ifndef VC_STAGES_ST_SCORE_H
#define VC_STAGES_ST_SCORE_H

#include "stage.h"

extern const struct stage_ops st_score_ops;

#endif
