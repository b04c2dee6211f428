/* grants: the demo issuer's sign-in sessions: refresh tokens and device
 * codes.
 *
 * A refresh token is an opaque random string handed to the client once;
 * the hub keeps only its SHA-256 in the state store (type "rt", principal
 * = the user's object id), with the client it was issued to and when it
 * expires. So a hub restart keeps every session, a copy of the database
 * leaks no usable token, and revoking a user's sessions
 * (revokeSignInSessions) deletes that user's rows. A refresh token is not
 * rotated on use: az runs several processes over one token cache (the
 * proxy refreshing while another command signs in for Graph), and a
 * rotated token would leave the slower of them signed out. It lives
 * `rt_ttl` seconds from sign-in, however often it is used.
 *
 * Device codes (RFC 8628) live in memory only: a bounded table of pending
 * sign-ins, each with a long random device code the client polls with and
 * a short user code the person types into the hub's sign-in page. They
 * expire in GRANTS_DEVICE_TTL seconds and are used once; a hub restart
 * forgets them (the person starts `az login --use-device-code` again). */
#ifndef CK_GRANTS_H
#define CK_GRANTS_H
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define GRANTS_DEVICE_TTL 900 /* seconds a device code waits for its person */
#define GRANTS_DEVICE_MAX 64  /* pending device sign-ins at once */
#define GRANTS_RT_LEN 64      /* buffer for a refresh token, NUL included */
#define GRANTS_USER_CODE_LEN 10
#define GRANTS_DEVICE_CODE_LEN 64
#define GRANTS_OID_LEN 128
#define GRANTS_SCOPE_LEN 1024
#define GRANTS_CLIENT_LEN 128

typedef struct grants grants_t;

/* `s` is borrowed and must outlive the grants. Returns NULL on no memory. */
grants_t *grants_new(store_t *s, int rt_ttl);
void grants_free(grants_t *g);

/* Outcomes of redeeming a grant. */
enum {
    GRANTS_OK = 0,
    GRANTS_UNKNOWN = -1,  /* never issued, revoked, or for another client */
    GRANTS_EXPIRED = -2,  /* issued, but its lifetime is over */
    GRANTS_PENDING = -3,  /* device code: the person has not signed in yet */
    GRANTS_FAILED = -4,   /* the store failed or memory ran out */
    GRANTS_TOO_MANY = -5, /* device codes: the table is full */
};

/* A fresh refresh token for `oid` (a user of the directory) and
 * `client_id`, written to out. Returns GRANTS_OK or GRANTS_FAILED. */
int grants_issue_refresh(grants_t *g, const char *oid, const char *client_id, char out[GRANTS_RT_LEN]);
/* Who `token` signs in, when it was issued to `client_id`: the object id
 * into oid. Returns GRANTS_OK, GRANTS_UNKNOWN, GRANTS_EXPIRED or
 * GRANTS_FAILED. */
int grants_redeem_refresh(grants_t *g, const char *token, const char *client_id, char oid[GRANTS_OID_LEN]);
/* Ends every session of `oid`: its refresh tokens stop working at once
 * (access tokens already issued live out their short lifetime, as on
 * Entra). Also drops the user's pending device codes. Returns the number
 * of refresh tokens removed, or GRANTS_FAILED. */
int grants_revoke(grants_t *g, const char *oid);

/* Starts a device sign-in for `client_id` asking for `scope`. Returns
 * GRANTS_OK with both codes written, GRANTS_TOO_MANY or GRANTS_FAILED. */
int grants_device_start(grants_t *g, const char *client_id, const char *scope,
                        char device_code[GRANTS_DEVICE_CODE_LEN], char user_code[GRANTS_USER_CODE_LEN]);
/* The person typed `user_code` and proved to be `oid`. User codes are
 * compared without case and without the dash. Returns GRANTS_OK,
 * GRANTS_UNKNOWN or GRANTS_EXPIRED. */
int grants_device_approve(grants_t *g, const char *user_code, const char *oid);
/* The client polls. On GRANTS_OK (once only) the signed-in object id and
 * the scope asked for at the start are copied out; else GRANTS_PENDING,
 * GRANTS_EXPIRED or GRANTS_UNKNOWN (also for another client's code). */
int grants_device_poll(grants_t *g, const char *device_code, const char *client_id, char oid[GRANTS_OID_LEN],
                       char scope[GRANTS_SCOPE_LEN]);

/* For tests: moves the grants' clock by `seconds`. */
void grants_advance_clock(grants_t *g, int64_t seconds);

#endif
