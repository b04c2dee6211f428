/* kubeconfig: merge by name with libyaml. See kubeconfig.h. */
#include "kubeconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "file.h"

#define MAX_EVENTS 2000000

static int fail(char *err, const char *fmt, const char *a)
{
    snprintf(err, KCFG_ERRLEN, fmt, a ? a : "");
    return -1;
}

/* Checks size, nesting and document count with the event parser before
 * building a tree: libyaml's loader recurses per nesting level. */
static int prescan(const char *in, size_t n, char err[KCFG_ERRLEN])
{
    yaml_parser_t p;
    yaml_event_t ev;
    if (!yaml_parser_initialize(&p))
        return fail(err, "out of memory", NULL);
    yaml_parser_set_input_string(&p, (const unsigned char *)in, n);
    int depth = 0, docs = 0, rc = 0;
    for (long events = 0;; events++) {
        if (events > MAX_EVENTS) {
            rc = fail(err, "the kubeconfig has too many nodes", NULL);
            break;
        }
        if (!yaml_parser_parse(&p, &ev)) {
            char m[300];
            snprintf(m, sizeof m, "%s at line %zu, column %zu", p.problem ? p.problem : "syntax error",
                     p.problem_mark.line + 1, p.problem_mark.column + 1);
            rc = fail(err, "the kubeconfig is not valid YAML: %s", m);
            break;
        }
        yaml_event_type_t t = ev.type;
        yaml_event_delete(&ev);
        if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
            if (++depth > KCFG_MAX_DEPTH) {
                rc = fail(err, "the kubeconfig nests deeper than any kubeconfig does", NULL);
                break;
            }
        } else if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT) {
            depth--;
        } else if (t == YAML_DOCUMENT_START_EVENT) {
            if (++docs > 1) {
                rc = fail(err, "the kubeconfig holds more than one YAML document", NULL);
                break;
            }
        } else if (t == YAML_STREAM_END_EVENT) {
            break;
        }
    }
    yaml_parser_delete(&p);
    return rc;
}

static int is_scalar(yaml_node_t *nd, const char *s)
{
    return nd && nd->type == YAML_SCALAR_NODE && nd->data.scalar.length == strlen(s) &&
           memcmp(nd->data.scalar.value, s, nd->data.scalar.length) == 0;
}

static int is_null(yaml_node_t *nd)
{
    if (!nd || nd->type != YAML_SCALAR_NODE)
        return 0;
    if (nd->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    return nd->data.scalar.length == 0 || is_scalar(nd, "null") || is_scalar(nd, "~") ||
           is_scalar(nd, "Null") || is_scalar(nd, "NULL");
}

/* Strings a YAML 1.1 reader (kubectl's) would take for another type get
 * quoted; everything else stays plain like kubectl writes it. */
static yaml_scalar_style_t style_for(const char *v)
{
    static const char *const special[] = {"",     "~",     "null",  "Null",  "NULL", "true", "True",
                                          "TRUE", "false", "False", "FALSE", "yes",  "Yes",  "YES",
                                          "no",   "No",    "NO",    "on",    "On",   "ON",   "off",
                                          "Off",  "OFF",   "y",     "Y",     "n",    "N",    NULL};
    for (size_t i = 0; special[i]; i++)
        if (!strcmp(v, special[i]))
            return YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    const char *c = v;
    if (*c == '-' || *c == '+' || *c == '.')
        c++;
    if (*c >= '0' && *c <= '9')
        return YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    return YAML_ANY_SCALAR_STYLE;
}

static int scalar(yaml_document_t *d, const char *v)
{
    return yaml_document_add_scalar(d, NULL, (yaml_char_t *)v, (int)strlen(v), style_for(v));
}

static int pair(yaml_document_t *d, int map, const char *k, int value)
{
    int key = scalar(d, k);
    return key && value && yaml_document_append_mapping_pair(d, map, key, value);
}

static int pair_str(yaml_document_t *d, int map, const char *k, const char *v)
{
    return pair(d, map, k, scalar(d, v));
}

/* Value node id of key `k` in mapping `map` (0: absent); *pair_index set. */
static int lookup(yaml_document_t *d, int map, const char *k, size_t *pair_index)
{
    yaml_node_t *m = yaml_document_get_node(d, map);
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++)
        if (is_scalar(yaml_document_get_node(d, p->key), k)) {
            if (pair_index)
                *pair_index = (size_t)(p - m->data.mapping.pairs.start);
            return p->value;
        }
    return 0;
}

/* Sets map[k] = value, replacing an existing value in place. */
static int set(yaml_document_t *d, int map, const char *k, int value)
{
    size_t i;
    if (lookup(d, map, k, &i)) {
        yaml_node_t *m = yaml_document_get_node(d, map);
        m->data.mapping.pairs.start[i].value = value;
        return 1;
    }
    return pair(d, map, k, value);
}

/* Puts `item` (a mapping with "name": name) into the list at root[list],
 * replacing an entry of the same name but keeping that entry's other keys
 * (extensions and the like). */
static int upsert(yaml_document_t *d, int root, const char *list, const char *name, const char *main_key,
                  int item, char err[KCFG_ERRLEN])
{
    int seq = lookup(d, root, list, NULL);
    yaml_node_t *sn = seq ? yaml_document_get_node(d, seq) : NULL;
    if (!seq || is_null(sn)) {
        seq = yaml_document_add_sequence(d, NULL, YAML_BLOCK_SEQUENCE_STYLE);
        if (!seq || !set(d, root, list, seq))
            return fail(err, "out of memory", NULL);
        sn = yaml_document_get_node(d, seq);
    }
    if (sn->type != YAML_SEQUENCE_NODE)
        return fail(err, "the kubeconfig's \"%s\" is not a list", list);
    for (yaml_node_item_t *it = sn->data.sequence.items.start; it < sn->data.sequence.items.top; it++) {
        yaml_node_t *old = yaml_document_get_node(d, *it);
        if (!old || old->type != YAML_MAPPING_NODE ||
            !is_scalar(yaml_document_get_node(d, lookup(d, *it, "name", NULL)), name))
            continue;
        /* Carry over what we do not own. The pairs array may move while we
         * append, so walk it by index. */
        size_t np = (size_t)(old->data.mapping.pairs.top - old->data.mapping.pairs.start);
        for (size_t i = 0; i < np; i++) {
            yaml_node_t *o = yaml_document_get_node(d, *it);
            yaml_node_pair_t pr = o->data.mapping.pairs.start[i];
            yaml_node_t *k = yaml_document_get_node(d, pr.key);
            if (is_scalar(k, "name") || is_scalar(k, main_key))
                continue;
            if (!yaml_document_append_mapping_pair(d, item, pr.key, pr.value))
                return fail(err, "out of memory", NULL);
        }
        sn = yaml_document_get_node(d, seq);
        sn->data.sequence.items.start[it - sn->data.sequence.items.start] = item;
        return 0;
    }
    if (!yaml_document_append_sequence_item(d, seq, item))
        return fail(err, "out of memory", NULL);
    return 0;
}

typedef struct outbuf {
    char *p;
    size_t n, cap;
} outbuf;

static int write_out(void *data, unsigned char *buf, size_t size)
{
    outbuf *o = data;
    if (o->n + size + 1 > o->cap) {
        size_t nc = (o->n + size + 1) * 2;
        char *np = realloc(o->p, nc);
        if (!np)
            return 0;
        o->p = np;
        o->cap = nc;
    }
    memcpy(o->p + o->n, buf, size);
    o->n += size;
    o->p[o->n] = '\0';
    return 1;
}

static int blank(const char *in, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n", in[i]))
            return 0;
    return 1;
}

int kcfg_merge(const char *in, size_t n, const kcfg_entry *e, char **out, size_t *out_len,
               char err[KCFG_ERRLEN])
{
    *out = NULL;
    if (!e->cluster || !e->user || !e->context || !e->server)
        return fail(err, "cluster, user, context and server names are required", NULL);
    if (n > KCFG_MAX_BYTES)
        return fail(err, "the kubeconfig is larger than 16 MiB", NULL);
    if (memchr(in, '\0', n))
        return fail(err, "the kubeconfig contains NUL bytes", NULL);
    yaml_document_t d;
    int root;
    if (blank(in, n)) {
        if (!yaml_document_initialize(&d, NULL, NULL, NULL, 1, 1))
            return fail(err, "out of memory", NULL);
        root = yaml_document_add_mapping(&d, NULL, YAML_BLOCK_MAPPING_STYLE);
        pair_str(&d, root, "apiVersion", "v1");
        pair_str(&d, root, "kind", "Config");
        pair(&d, root, "preferences", yaml_document_add_mapping(&d, NULL, YAML_BLOCK_MAPPING_STYLE));
    } else {
        if (prescan(in, n, err) < 0)
            return -1;
        yaml_parser_t p;
        if (!yaml_parser_initialize(&p))
            return fail(err, "out of memory", NULL);
        yaml_parser_set_input_string(&p, (const unsigned char *)in, n);
        int ok = yaml_parser_load(&p, &d);
        yaml_parser_delete(&p);
        if (!ok)
            return fail(err, "the kubeconfig is not valid YAML", NULL);
        yaml_node_t *r = yaml_document_get_root_node(&d);
        if (!r || is_null(r)) {
            yaml_document_delete(&d);
            return kcfg_merge("", 0, e, out, out_len, err);
        }
        if (r->type != YAML_MAPPING_NODE) {
            yaml_document_delete(&d);
            return fail(
                err, "the kubeconfig is not a YAML mapping (apiVersion, clusters, users, contexts...)", NULL);
        }
        root = 1; /* the root is always the first node */
        /* Entries kubectl cannot read would be lost on our rewrite too. */
        static const char *const lists[] = {"clusters", "users", "contexts", NULL};
        for (size_t i = 0; lists[i]; i++) {
            yaml_node_t *l = yaml_document_get_node(&d, lookup(&d, root, lists[i], NULL));
            if (l && !is_null(l) && l->type != YAML_SEQUENCE_NODE) {
                yaml_document_delete(&d);
                return fail(err, "the kubeconfig's \"%s\" is not a list", lists[i]);
            }
            for (yaml_node_item_t *it = l && l->type == YAML_SEQUENCE_NODE ? l->data.sequence.items.start
                                                                           : NULL;
                 it && it < l->data.sequence.items.top; it++) {
                yaml_node_t *x = yaml_document_get_node(&d, *it);
                if (!x || x->type != YAML_MAPPING_NODE) {
                    yaml_document_delete(&d);
                    return fail(err, "an entry of the kubeconfig's \"%s\" is not a mapping", lists[i]);
                }
            }
        }
    }
    int rc = -1;
    /* cluster */
    int c = yaml_document_add_mapping(&d, NULL, YAML_BLOCK_MAPPING_STYLE);
    int cm = yaml_document_add_mapping(&d, NULL, YAML_BLOCK_MAPPING_STYLE);
    int okc = c && cm && pair_str(&d, c, "name", e->cluster) && pair(&d, c, "cluster", cm) &&
              pair_str(&d, cm, "server", e->server) &&
              (!e->ca_data || pair_str(&d, cm, "certificate-authority-data", e->ca_data));
    /* user */
    int u = yaml_document_add_mapping(&d, NULL, YAML_BLOCK_MAPPING_STYLE);
    int um = yaml_document_add_mapping(&d, NULL, YAML_BLOCK_MAPPING_STYLE);
    int oku = u && um && pair_str(&d, u, "name", e->user) && pair(&d, u, "user", um) &&
              (!e->client_cert_data || pair_str(&d, um, "client-certificate-data", e->client_cert_data)) &&
              (!e->client_key_data || pair_str(&d, um, "client-key-data", e->client_key_data)) &&
              (!e->token || pair_str(&d, um, "token", e->token));
    /* context */
    int x = yaml_document_add_mapping(&d, NULL, YAML_BLOCK_MAPPING_STYLE);
    int xm = yaml_document_add_mapping(&d, NULL, YAML_BLOCK_MAPPING_STYLE);
    int okx = x && xm && pair_str(&d, x, "name", e->context) && pair(&d, x, "context", xm) &&
              pair_str(&d, xm, "cluster", e->cluster) && pair_str(&d, xm, "user", e->user) &&
              (!e->nspace || pair_str(&d, xm, "namespace", e->nspace));
    if (!okc || !oku || !okx) {
        fail(err, "out of memory", NULL);
        goto done;
    }
    if (upsert(&d, root, "clusters", e->cluster, "cluster", c, err) < 0 ||
        upsert(&d, root, "users", e->user, "user", u, err) < 0 ||
        upsert(&d, root, "contexts", e->context, "context", x, err) < 0)
        goto done;
    if (!set(&d, root, "current-context", scalar(&d, e->context))) {
        fail(err, "out of memory", NULL);
        goto done;
    }
    if (!lookup(&d, root, "apiVersion", NULL))
        pair_str(&d, root, "apiVersion", "v1");
    if (!lookup(&d, root, "kind", NULL))
        pair_str(&d, root, "kind", "Config");
    yaml_emitter_t em;
    outbuf ob = {0};
    if (!yaml_emitter_initialize(&em)) {
        fail(err, "out of memory", NULL);
        goto done;
    }
    yaml_emitter_set_output(&em, write_out, &ob);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, -1);
    yaml_emitter_set_indent(&em, 2);
    if (!yaml_emitter_open(&em)) {
        yaml_emitter_delete(&em);
        fail(err, "cannot write the kubeconfig as YAML", NULL);
        goto done;
    }
    /* yaml_emitter_dump takes the document, whatever its outcome. */
    int eok = yaml_emitter_dump(&em, &d) && yaml_emitter_close(&em) && yaml_emitter_flush(&em);
    yaml_emitter_delete(&em);
    if (!eok || !ob.p) {
        free(ob.p);
        return fail(err, "cannot write the kubeconfig as YAML", NULL);
    }
    *out = ob.p;
    *out_len = ob.n;
    return 0;
done:
    yaml_document_delete(&d);
    return rc;
}

static int mkdirs(const char *dir)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

int kcfg_merge_file(const char *path, const kcfg_entry *e, char err[KCFG_ERRLEN])
{
    char dir[4096], lock[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *dn = dirname(dir);
    if (mkdirs(dn) < 0) {
        snprintf(err, KCFG_ERRLEN, "cannot create the directory %s: %s", dn, strerror(errno));
        return -1;
    }
    /* kubectl's own writers lock FILE.lock; so do we (advisory, held only
     * for the read-merge-rename). */
    snprintf(lock, sizeof lock, "%s.lock", path);
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lfd < 0 || flock(lfd, LOCK_EX) != 0) {
        snprintf(err, KCFG_ERRLEN, "cannot lock %s: %s", lock, strerror(errno));
        if (lfd >= 0)
            close(lfd);
        return -1;
    }
    int rc = -1;
    char *in = NULL, *out = NULL;
    size_t n = 0, out_len = 0;
    char ferr[FILE_ERRLEN];
    in = file_read(path, KCFG_MAX_BYTES, &n, ferr);
    if (!in && errno != ENOENT) { /* a missing kubeconfig is an empty one */
        snprintf(err, KCFG_ERRLEN, "%s%s", ferr, errno == EFBIG ? "; not a kubeconfig" : "");
        goto out;
    }
    char merr[KCFG_ERRLEN];
    if (kcfg_merge(in ? in : "", n, e, &out, &out_len, merr) < 0) {
        snprintf(err, KCFG_ERRLEN, "%s: %s; it was left unchanged", path, merr);
        goto out;
    }
    if (file_write_atomic(path, out, out_len, 0600, 0, ferr) < 0) {
        snprintf(err, KCFG_ERRLEN, "%s", ferr);
        goto out;
    }
    rc = 0;
out:
    free(in);
    free(out);
    flock(lfd, LOCK_UN);
    close(lfd);
    return rc;
}
