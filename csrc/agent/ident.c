/* ident: the mapping from verified claims to the impersonated user and
 * groups. See ident.h for the rule. */
#include "ident.h"

#include <stdio.h>
#include <string.h>

int ident_parse_claim(const char *s)
{
    if (!strcmp(s, "upn"))
        return IDENT_CLAIM_UPN;
    if (!strcmp(s, "oid"))
        return IDENT_CLAIM_OID;
    return -1;
}

ident_kind ident_kind_of(const jwt_claims *c)
{
    if (!strcmp(c->idtyp, "app"))
        return IDENT_APP;
    /* An app-only token without the optional idtyp claim. */
    if (strcmp(c->idtyp, "user") != 0 && !c->upn[0] && !c->has_scp && c->appid[0])
        return IDENT_APP;
    return c->upn[0] ? IDENT_MEMBER : IDENT_USER_NO_UPN;
}

const char *ident_kind_name(ident_kind k)
{
    switch (k) {
    case IDENT_MEMBER: return "user";
    case IDENT_USER_NO_UPN: return "guest";
    case IDENT_APP: return "app";
    }
    return "unknown";
}

const char *ident_object_id(const jwt_claims *c)
{
    return c->oid[0] ? c->oid : c->sub;
}

/* prefix + name into out; -1 when it does not fit, is empty or holds a
 * control character (CR or LF would end the header line). */
static int join(const char *prefix, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s%s", prefix ? prefix : "", name);
    if (n <= 0 || (size_t)n >= cap || !name[0])
        return -1;
    for (int i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            return -1;
    return n;
}

int ident_user(const jwt_claims *c, const ident_opts *o, char *out, size_t cap)
{
    const char *name = ident_object_id(c);
    if (o->claim == IDENT_CLAIM_UPN && ident_kind_of(c) == IDENT_MEMBER)
        name = c->upn;
    return join(o->user_prefix, name, out, cap);
}

int ident_group(const char *group, const ident_opts *o, char *out, size_t cap)
{
    return join(o->group_prefix, group, out, cap);
}
