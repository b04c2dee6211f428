/* creds: what the agent reads from files.
 *
 *   - its own bearer token for the API server (--token-file), re-read
 *     every 30 s so a projected, rotating service-account token keeps
 *     working;
 *   - the trusted issuer's keys from --jwks-file, re-read when a token
 *     names a key the agent does not have (the file was rewritten);
 *   - groups for tokens whose groups overflowed into an overage claim
 *     (--groups-file: a JSON object mapping object ids to arrays of group
 *     ids), parsed once and kept until the file's modification time or
 *     size changes, so the request path does not re-read it each time.
 * Files are read whole up to a ceiling; a larger file is refused. */
#ifndef CK_CREDS_H
#define CK_CREDS_H
#include <stddef.h>

#include "agent.h"

/* Reads up to cap - 1 bytes of path into out, trailing whitespace
 * trimmed. Returns the length, or -1 when missing or too large. */
int creds_read_file(const char *path, char *out, size_t cap);

/* 0, or -1 (missing, empty, too large: the old token stays). */
int creds_reload_token(agent_t *a);
/* Replaces a->keys from --jwks-file. 0, or -1 (the old keys stay). */
int creds_reload_jwks(agent_t *a);
/* Groups of `oid` from --groups-file. Returns the count (>= 0; when > 0,
 * *out is malloc'd, free with creds_free_groups) or -1 when there is no
 * source, no entry, or memory ran out (never a partial list). */
int creds_lookup_groups(agent_t *a, const char *oid, char ***out);
void creds_free_groups(char **g, int n);
/* Drops the cached groups file (at exit). */
void creds_close(void);

#endif
