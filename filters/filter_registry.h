/* filter_registry: the one table of every filter the project has, in the
 * order a chain applies them within each kind (cheap, header-only checks
 * before pixel decoding; OBELICS's order for the text filters).  Adding a
 * filter is one module plus one row in filter_registry.c. */
#ifndef VC_FILTERS_FILTER_REGISTRY_H
#define VC_FILTERS_FILTER_REGISTRY_H

#include <stddef.h>

#include "filter.h"

size_t filter_registry_count(void);
/* Filter i (0 <= i < count); NULL past the end.  Static storage. */
const struct filter_ops *filter_registry_at(size_t i);
/* By name; NULL when no filter has that name. */
const struct filter_ops *filter_registry_find(const char *name);
/* Position of a filter in the table; -1 when it is not listed. */
long filter_registry_index(const struct filter_ops *ops);

#endif
