/* What the library's folders share of base/ beyond its public headers. Not installed. */
#ifndef CM_BASE_INTERNAL_H
#define CM_BASE_INTERNAL_H

#include "cm_base.h"

/* Records from's failure (code, message and what it is about) in to, unless to holds one
 * already; returns from's code. Thread-safe for to. */
int cm__ctx_pass(cm_ctx_t *to, const cm_ctx_t *from);

/* Puts "prefix: " before the message of a context no other thread uses, keeping where it names
 * its setting. */
void cm__ctx_prefix(cm_ctx_t *ctx, const char *prefix);

#endif
