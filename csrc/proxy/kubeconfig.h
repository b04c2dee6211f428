/* kubeconfig: merging the proxy's cluster, user and context into a
 * kubeconfig file the way kubectl's own writers do, with libyaml.
 *
 * Entries are merged by name: an existing cluster/user/context of the same
 * name is replaced (its extra keys, such as extensions, are kept), every
 * other entry and every unknown top-level field survives, and
 * current-context is set. A file that is not a kubeconfig (not a mapping,
 * clusters not a list, more than one YAML document, nesting deeper than
 * KCFG_MAX_DEPTH, larger than KCFG_MAX_BYTES) is refused with a sentence
 * and left untouched.
 *
 * The file is rewritten atomically (temporary file, fsync, rename) under
 * an advisory lock on FILE.lock, with mode 0600; the file and its
 * directory are created when missing. Comments do not survive (kubectl
 * drops them too). */
#ifndef CK_KUBECONFIG_H
#define CK_KUBECONFIG_H
#include <stddef.h>

#define KCFG_MAX_BYTES (16u << 20)
#define KCFG_MAX_DEPTH 64
#define KCFG_ERRLEN 512

typedef struct kcfg_entry {
    const char *cluster;          /* cluster entry name */
    const char *server;           /* https://127.0.0.1:47011 */
    const char *ca_data;          /* base64 PEM: certificate-authority-data */
    const char *user;             /* user entry name */
    const char *client_cert_data; /* base64 PEM */
    const char *client_key_data;  /* base64 PEM */
    const char *token;            /* optional bearer token for the user */
    const char *context;          /* context entry name; becomes current-context */
    const char *nspace;           /* optional context namespace */
} kcfg_entry;

/* Merges into `in` (n bytes; n == 0 means a new file). On success *out is
 * a malloc'd NUL-terminated document. Returns 0 or -1 with err. */
int kcfg_merge(const char *in, size_t n, const kcfg_entry *e, char **out, size_t *out_len,
               char err[KCFG_ERRLEN]);
/* Locks, reads, merges and atomically replaces `path`. */
int kcfg_merge_file(const char *path, const kcfg_entry *e, char err[KCFG_ERRLEN]);

#endif
