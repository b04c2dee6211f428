/* jwks: the trusted issuer's keys fetched from a URL (--jwks-url), as
 * Entra and other OIDC providers publish them: at start, every hour, and
 * when a token names a key the agent does not have (at most once per
 * 10 s). Requests holding such a token wait for the fetch rather than
 * getting a 401 during a key rotation. Fetches go through the agent's
 * proxy settings like every other outbound call. */
#ifndef CK_JWKS_H
#define CK_JWKS_H
#include "agent.h"

typedef void (*jwks_cb)(void *ud, int ok);
void jwks_start(agent_t *a);
void jwks_tick(agent_t *a);
/* Queues cb(ud, ok) for a fetch; returns -1 when none will happen (no
 * URL, too many waiters, or fetched < 10 s ago). */
int jwks_refresh(agent_t *a, jwks_cb cb, void *ud);
/* Drops a waiter that went away. */
void jwks_forget(void *ud);
void jwks_stop(void);

#endif
