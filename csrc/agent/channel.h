/* channel: the agent's listener control channels on the relay. Each dials
 * wss://relay/$hc/<hc>?sb-hc-action=listen (through the agent's proxy
 * settings, TLS end to end), renews its token before it expires, pings
 * when idle and reconnects with jittered backoff. Each accept message's
 * rendezvous address goes to a->on_accept. */
#ifndef CK_CHANNEL_H
#define CK_CHANNEL_H
#include "agent.h"

/* Opens the channels; -1 (nothing started) when memory ran out. */
int channel_start_all(agent_t *a);
void channel_tick(agent_t *a);
void channel_stop_all(agent_t *a);
/* cluster-connect off/on: close the channels without stopping the agent,
 * or open them again. */
void channel_pause_all(agent_t *a);
void channel_resume_all(agent_t *a);

#endif
