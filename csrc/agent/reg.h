/* reg: the agent's registration with arc-hub (registered mode): signed
 * heartbeats that bring the relay, the hybrid connection, Listen tokens,
 * the feature switches, the trusted issuer and the role-assignment
 * version (see reg.c). */
#ifndef CK_REG_H
#define CK_REG_H
#include "agent.h"

/* Needs a->sign (sign_open). Returns 0, or -1 with a sentence in err. */
int reg_start(agent_t *a, char err[256]);
void reg_tick(agent_t *a);
void reg_stop(agent_t *a);

#endif
