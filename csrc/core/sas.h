/* sas: Shared Access Signature tokens as Azure Relay uses them.
 *
 *   SharedAccessSignature sr=URLENC(resource)&sig=URLENC(b64(HMAC-SHA256(key,
 *       URLENC(resource) "\n" expiry)))&se=expiry&skn=keyName
 *
 * The key string's bytes are the HMAC key. Verification hashes `sr` exactly
 * as received (clients differ in escape case, port and trailing slash), and
 * authorization compares the decoded, normalised resource. */
#ifndef CK_SAS_H
#define CK_SAS_H
#include <stddef.h>
#include <stdint.h>

#define SAS_MAX_TOKEN 2048

enum { SAS_RIGHT_LISTEN = 1, SAS_RIGHT_SEND = 2, SAS_RIGHT_MANAGE = 4 };

/* Outcomes, ordered so that everything up to SAS_ERR_EXPIRED means 401
 * (who are you?) and the rest 403 (not allowed). */
enum {
    SAS_OK = 0,
    SAS_ERR_MISSING = -1,
    SAS_ERR_MALFORMED = -2,
    SAS_ERR_UNKNOWN_KEY = -3,
    SAS_ERR_SIGNATURE = -4,
    SAS_ERR_EXPIRED = -5,
    SAS_ERR_SCOPE = -6,
    SAS_ERR_RIGHTS = -7,
};
const char *sas_strerror(int rc);
/* 401 or 403 for an error outcome. */
int sas_http_status(int rc);

/* A parsed token: slices into the caller's string. */
typedef struct sas_token {
    const char *sr, *sig, *skn, *se_raw;
    size_t sr_len, sig_len, skn_len, se_len;
    int64_t se;
} sas_token;

/* Parses a token (with or without the "SharedAccessSignature " prefix).
 * Returns SAS_OK or SAS_ERR_MALFORMED. */
int sas_parse(const char *tok, size_t n, sas_token *t);

/* Creates a token for `resource` (a URI, encoded by this function).
 * Returns its length, or -1 if cap is too small. */
long sas_create(const char *resource, const char *key_name, const char *key, int64_t expiry, char *out,
                size_t cap);

/* Checks the signature with `key` in constant time. SAS_OK or
 * SAS_ERR_SIGNATURE. */
int sas_check_sig(const sas_token *t, const char *key);

/* Decodes and normalises a resource: scheme and port dropped, host
 * lower-cased, trailing '/' trimmed. "http://H:443/a/b/" -> "h/a/b".
 * Returns its length or -1. */
long sas_normalize(const char *sr, size_t n, char *out, size_t cap);

/* Whether the normalised resource covers host/entity (a path-segment
 * prefix, case-insensitive). `host` carries no port (see url_host). */
int sas_covers(const char *norm, const char *host, const char *entity);

typedef struct sas_rule {
    const char *name;
    const char *key;
    int rights;
} sas_rule;

/* Full check of a token for an operation on host/entity at time `now`:
 * parse, find the key (entity rules first, then namespace rules), verify
 * the signature, the expiry, the scope and the rights (Manage implies
 * Listen and Send). On SAS_OK, *expires receives `se`. */
int sas_authorize(const char *tok, size_t n, const sas_rule *entity_rules, size_t n_entity,
                  const sas_rule *ns_rules, size_t n_ns, const char *host, const char *entity, int right,
                  int64_t now, int64_t *expires);

#endif
