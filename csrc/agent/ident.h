/* ident: whom the API server sees for a verified token, the agent's
 * counterpart of kube-apiserver's --oidc-username-claim,
 * --oidc-username-prefix and --oidc-groups-prefix.
 *
 * The kind of caller is read from the claims Entra issues:
 *   - idtyp "app" (Entra's claim for app-only tokens; managed identities'
 *     tokens carry it) is an application; idtyp "user" is a user;
 *   - without idtyp, a token with no upn, no scp and an appid (v1) or azp
 *     (v2) is an application: app-only tokens from the client-credentials
 *     flow carry roles, never scp or upn;
 *   - any other token is a user: a member when it has a upn, otherwise a
 *     user without one (Entra guests, tokens of issuers that have no upn).
 * With IDENT_CLAIM_UPN (the default) members are impersonated by their
 * upn, everyone else by oid (else sub); with IDENT_CLAIM_OID everyone by
 * oid (else sub). Groups are always the groups claim's object ids. The
 * prefixes go in front of every user name and every group from the token
 * (or the groups file); the Azure side (azure-rbac checks, the groups
 * file) is always keyed by the object id, never by the mapped name. */
#ifndef CK_IDENT_H
#define CK_IDENT_H
#include <stddef.h>

#include "jwt.h"

enum { IDENT_CLAIM_UPN = 0, IDENT_CLAIM_OID = 1 };
typedef enum { IDENT_MEMBER, IDENT_USER_NO_UPN, IDENT_APP } ident_kind;

typedef struct ident_opts {
    int claim;                /* IDENT_CLAIM_* */
    const char *user_prefix;  /* NULL or "" for none */
    const char *group_prefix; /* NULL or "" for none */
} ident_opts;

/* "upn" or "oid" to IDENT_CLAIM_*; -1 for anything else. */
int ident_parse_claim(const char *s);

ident_kind ident_kind_of(const jwt_claims *c);
/* "user", "guest" (a user without a upn) or "app", for logs. */
const char *ident_kind_name(ident_kind k);

/* The caller's object id (oid, else sub): what the hub and the groups
 * file know the caller by. Points into c. */
const char *ident_object_id(const jwt_claims *c);

/* Writes the Impersonate-User value for c into out (NUL-terminated).
 * Returns its length, or -1 when it does not fit in cap or holds a byte
 * that may not appear in a header value (control characters): such a
 * caller is refused, never impersonated under a shortened name. */
int ident_user(const jwt_claims *c, const ident_opts *o, char *out, size_t cap);
/* The same for one group (prefix + group id). */
int ident_group(const char *group, const ident_opts *o, char *out, size_t cap);

#endif
