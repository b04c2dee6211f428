/* fwd: one accepted rendezvous served as an HTTP/1.1 stream towards the
 * API server, as the verified caller (see fwd.c's opening comment). */
#ifndef CK_FWD_H
#define CK_FWD_H
#include "agent.h"

/* Serves one accepted rendezvous (address from the accept message). */
void fwd_accept(agent_t *a, const char *address);

#endif
