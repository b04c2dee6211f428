/* sign: the agent's identity towards the hub.
 *
 * `az connectedk8s connect` gave the agent an RSA key whose public half
 * the connectedCluster resource holds. Hub calls carry a short JWT signed
 * with it (iss = sub = the resource id, aud = HUB/agent, 5 minutes). One
 * token is reused for every call until a minute before it expires: an RSA
 * signature per azure-rbac check cost more than the check itself. */
#ifndef CK_SIGN_H
#define CK_SIGN_H
#include <stdint.h>

typedef struct sign sign_t;

/* Loads the PEM key. Returns NULL with a sentence in err. */
sign_t *sign_open(const char *key_file, const char *resource_id, const char *hub, char err[256]);
void sign_close(sign_t *s);
/* The current token (valid at least another minute), signing a new one
 * when needed; NULL when signing failed. Owned by s, valid until the next
 * call. */
const char *sign_token(sign_t *s);
/* Tokens signed so far (for /metrics and the benchmark). */
uint64_t sign_count(const sign_t *s);

#endif
