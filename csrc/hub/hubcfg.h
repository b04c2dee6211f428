/* hubcfg: arc-hub's relay configuration (JSON file).
 *
 *   {"namespaceRules": [{"name": "RootManageSharedAccessKey", "key": "...",
 *                        "rights": ["Listen", "Send", "Manage"]}],
 *    "hybridConnections": [{"name": "hyco", "rules": [...]}]}
 *
 * Namespace rules authorize every hybrid connection; a hybrid connection's
 * own rules authorize only it (Azure Relay's model). */
#ifndef CK_HUBCFG_H
#define CK_HUBCFG_H
#include <stddef.h>

#include "sas.h"

typedef struct hubcfg_hc {
    char *name;
    sas_rule *rules;
    size_t nrules;
} hubcfg_hc;

typedef struct hubcfg {
    sas_rule *ns_rules;
    size_t n_ns;
    hubcfg_hc *hcs;
    size_t n_hcs;
} hubcfg;

/* Loads and validates `path`. Returns 0, or -1 with a sentence in err. */
int hubcfg_load(const char *path, hubcfg *cfg, char err[256]);
/* Parses JSON text (for tests and the fuzzer). */
int hubcfg_parse(const char *json, size_t n, hubcfg *cfg, char err[256]);
void hubcfg_free(hubcfg *cfg);
/* Writes a fresh development config with a random namespace key and the
 * given hybrid connection names (NULL-terminated). Mode 0600. */
int hubcfg_write_dev(const char *path, const char *const *hc_names, char err[256]);

#endif
