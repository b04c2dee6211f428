/* idp: arc-hub's test and demo identity provider (the control plane's
 * verification of bearer tokens, this issuer's and trusted external ones,
 * is verify.h's).
 *
 * It is enough of an OIDC issuer for the real az to sign in offline
 * (see ../shared/design/arm-and-cli.md). az treats an authority whose
 * path is /adfs as AD FS (MSAL skips Entra's instance and user-realm
 * discovery), so the issuer is PUBLIC_URL/adfs: discovery and JWKS
 * there; at /adfs/oauth2/token client credentials for applications and,
 * for people, password (ROPC), refresh_token and device_code grants
 * (/adfs/oauth2/devicecode starts one; /adfs/devicelogin is the page where
 * the person types the code and the password). A person's answer carries
 * an id_token and client_info (MSAL files the account under uid.utid) and
 * a refresh token (grants.h) that gets tokens for any audience later:
 * ARM, the agent's, Graph. And a
 * managed-identity endpoint /msi/token in both shapes az uses: POST with a
 * form (MSI_ENDPOINT, older az) and GET with a query (IDENTITY_ENDPOINT,
 * App Service style, az >= 2.69). Tokens are
 * RS256 with Entra's claim names (oid, tid, groups, appid, idtyp), and a
 * principal in more than 200 groups gets Entra's overage marker instead
 * of the list. Production points the hub and the agent at a real Entra
 * tenant or another OIDC provider; the directory file then lists no
 * principals and this issuer mints nothing.
 *
 * The directory (JSON) names the tenant, the subscriptions ARM shows and
 * the principals:
 *   {"tenantId": "...", "subscriptions": [{"subscriptionId": "...",
 *    "displayName": "..."}], "owners": ["<objectId>"], "msiEndpoint": true,
 *    "principals": [{"name": "ann", "type": "User"|"ServicePrincipal",
 *      "objectId": "...", "appId": "...", "secret": "...",
 *      "password": "...", "groups": ["..."]}]}
 * "owners" hold Owner on every subscription (the bootstrap admin).
 * "msiEndpoint" lets anyone who can reach the hub mint tokens for any
 * principal by appId/objectId: a test facility, off unless set. */
#ifndef CK_IDP_H
#define CK_IDP_H
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "jwt.h"
#include "store.h"

#define IDP_GROUPS_INLINE_MAX 200 /* Entra's limit before the overage marker */

typedef struct idp_principal {
    char *name, *type, *object_id, *app_id, *secret, *password;
    char **groups;
    size_t ngroups;
} idp_principal;

typedef struct idp_subscription {
    char *id, *display_name;
} idp_subscription;

typedef struct idp idp_t;

/* Loads the directory and the signing key (PEM, RSA), creating the key
 * when missing. `public_url` is how clients reach the hub
 * ("https://host:port", no trailing slash): the issuer is
 * public_url + "/adfs". Returns NULL with a sentence in err. */
idp_t *idp_new(const char *directory_path, const char *key_path, const char *public_url, char err[256]);
void idp_free(idp_t *p);

const char *idp_issuer(const idp_t *p);
const char *idp_public_url(const idp_t *p);
const char *idp_tenant(const idp_t *p);
/* The signing key as a key set (lives as long as p), for verify.h. */
const jwt_keyset *idp_keys(const idp_t *p);
/* JWKS document of the signing key. */
const char *idp_jwks(const idp_t *p);
const idp_subscription *idp_subscriptions(const idp_t *p, size_t *n);
int idp_is_owner(const idp_t *p, const char *object_id);
const idp_principal *idp_find(const idp_t *p, const char *object_id);
/* By object id, app id or name (a user's name is its UPN). */
const idp_principal *idp_lookup(const idp_t *p, const char *app_or_name);
const idp_principal *idp_principals(const idp_t *p, size_t *n);

/* Lets people sign in: refresh tokens are kept in `s` (borrowed), access
 * and id tokens live token_ttl seconds, refresh tokens rt_ttl from
 * sign-in. Without it only applications and managed identities get
 * tokens. Returns 0 or -1 (out of memory). */
int idp_sessions(idp_t *p, store_t *s, int token_ttl, int rt_ttl);
/* Ends every sign-in session of a user (Graph's revokeSignInSessions):
 * its refresh tokens stop working. Returns how many went, or -1. */
int idp_revoke_sessions(idp_t *p, const char *object_id);

/* Mints an access token for `who` with audience `aud`, valid `ttl`
 * seconds. Returns a malloc'd token or NULL. */
char *idp_mint(const idp_t *p, const idp_principal *who, const char *aud, int ttl, int64_t *expires_on);

/* Verifies a bearer token issued by this provider for one of `auds`
 * (NULL-terminated), for the demo issuer's own endpoints. Returns JWT_OK
 * or a JWT_ERR_*; claims filled. */
int idp_verify(const idp_t *p, const char *token, size_t n, const char *const *auds, jwt_claims *out,
               char err[JWT_ERRLEN]);

/* /adfs/... (discovery, keys, token, devicecode, devicelogin) and
 * /msi/token. */
int idp_route(void *ud, const api_req *req, api_resp *resp);

/* Writes a fresh development directory: one tenant, one subscription, an
 * admin service principal (owner) and MSI on. Mode 0600. */
int idp_write_dev_directory(const char *path, char err[256]);

#endif
