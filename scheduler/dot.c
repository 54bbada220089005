/* A task graph in Graphviz's DOT form: a node per task (its kind, id and bytes, a colour per
 * kind) and an edge per dependency. Reads the graph through cm__graph_task only. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "scheduler_internal.h"

/* Writes s between double quotes as a DOT string. */
static void put_dot_string(const char *s, FILE *f)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if (*s == '\n') {
            fputs("\\n", f);
            continue;
        }
        fputc(*s, f);
    }
}

/* Bytes for a reader: exact below 1 KiB, else one decimal in the largest binary unit. */
static void format_bytes(size_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        snprintf(buf, len, "%zu B", bytes);
        return;
    }
    double v = (double)bytes / 1024;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, "%.1f %s", v, units[u]);
}

/* A fill colour per kind, so that reads, remaps and writes stand apart. */
static const char *kind_color(const char *kind)
{
    static const char *const palette[] = {"#a6cee3", "#b2df8a", "#fb9a99", "#fdbf6f",
                                          "#cab2d6", "#ffff99", "#8dd3c7", "#d9d9d9"};
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *c = kind; *c; c++) h = (h ^ (unsigned char)*c) * 16777619u;
    return palette[h % (sizeof palette / sizeof palette[0])];
}

int cm_graph_write_dot(const cm_graph_t *g, FILE *f, cm_ctx_t *ctx)
{
    errno = 0;
    fputs("digraph tasks {\n    node [shape=box, style=filled, fontname=\"Helvetica\"];\n", f);
    int n = cm__graph_size(g);
    cm__task_view_t t;
    for (int i = 0; i < n; i++) {
        char bytes[32];
        cm__graph_task(g, i, &t);
        format_bytes(t.bytes, bytes, sizeof bytes);
        fprintf(f, "    t%d [label=\"", i);
        put_dot_string(t.kind, f);
        fprintf(f, " %d\\n%s\", fillcolor=\"%s\"];\n", i, bytes, kind_color(t.kind));
    }
    for (int i = 0; i < n; i++) {
        cm__graph_task(g, i, &t);
        for (int e = 0; e < t.n_deps; e++) fprintf(f, "    t%d -> t%d;\n", t.deps[e], i);
    }
    fputs("}\n", f);
    if (fflush(f) != 0 || ferror(f))
        return cm_fail(ctx, CM_EIO, "task graph: writing the DOT form failed: %s",
                       errno ? strerror(errno) : "output error");
    return 0;
}
