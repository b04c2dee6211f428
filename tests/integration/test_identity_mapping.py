"""Who the API server sees (issue 11): the agent's mapping from Entra
claims to Impersonate-User / Impersonate-Group, end to end with a real
kube-apiserver, the arc-hub relay, agent processes and real kubectl
(through relay_pipe, as test_agent.py does).

Three agents share one cluster and one relay:
  - "upn": no setting (the default, --username-claim upn): members by upn,
    guests and applications by object id;
  - "oid": username-claim oid from its --config file: everyone by object id;
  - "prefix": --config says oid and a wrong prefix, the command line says
    upn and aad: (the command line wins), groups prefixed aadgroup:.

For every kind of caller and both settings, a binding in the style that
setting impersonates authorizes `kubectl get pods`, and a binding in the
other style alone is refused with the API server's own 403 naming the
impersonated user. Groups are always object ids; the other style for a
group is its display name."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import AGENT_RBAC, BUILD, ROOT_KEY, start_hub, stop_hub
from issuer import TestIssuer
from kube import KubeCluster
from relay_pipe import RelayPipe

SETTINGS = ("upn", "oid")
KINDS = ("member", "guest", "group", "service-principal", "managed-identity")
STYLES = ("matching", "other")
AZURE_CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"  # the client a member's token is issued to


def caller(kind, tag):
    """The token a caller of this kind gets from Entra (as mint() keywords)
    and its names: oid, the upn-style name a binding might use instead
    (`alt`), and the group it is in (kind "group" only)."""
    oid = "oid-" + tag
    if kind in ("member", "group"):
        # v1 delegated token of a tenant member: upn, scp, appid.
        c = {"mint": dict(upn=tag + "@contoso.example", extra={"scp": "user_impersonation", "appid": AZURE_CLI}),
             "upn": tag + "@contoso.example"}
        if kind == "group":
            c["mint"]["groups"] = ["gid-" + tag]
            c["group"], c["group_name"] = "gid-" + tag, tag + "-team"
        return dict(c, oid=oid)
    if kind == "guest":
        # A B2B guest: scp, unique_name live.com#..., no upn (Entra leaves
        # it out unless the app opts in). Its UPN in the resource tenant
        # is the #EXT# form, which a binding might name.
        return {"oid": oid, "upn": None, "alt": tag + "_outlook.example#EXT#@contoso.onmicrosoft.com",
                "mint": dict(extra={"scp": "user_impersonation", "appid": AZURE_CLI,
                                    "unique_name": "live.com#" + tag + "@outlook.example",
                                    "preferred_username": tag + "@outlook.example"})}
    if kind == "service-principal":
        # Client credentials (v1, without the optional idtyp claim):
        # appid, roles, no scp, no upn, no preferred_username; sub == oid.
        return {"oid": oid, "upn": None, "alt": "appid-" + tag,
                "mint": dict(omit=("preferred_username",),
                             extra={"sub": oid, "appid": "appid-" + tag, "appidacr": "1", "roles": ["Pods.Read"]})}
    if kind == "managed-identity":
        # A managed identity's token from IMDS: idtyp app, appidacr 2,
        # xms_mirid naming the identity resource.
        return {"oid": oid, "upn": None, "alt": "appid-" + tag,
                "mint": dict(idtyp="app", omit=("preferred_username",),
                             extra={"sub": oid, "appid": "appid-" + tag, "appidacr": "2",
                                    "xms_mirid": "/subscriptions/s/resourcegroups/rg/providers/"
                                                 "Microsoft.ManagedIdentity/userAssignedIdentities/" + tag})}
    raise AssertionError(kind)


def seen_as(c, setting, prefix=""):
    """The user name the agent should impersonate."""
    return prefix + (c["upn"] if setting == "upn" and c["upn"] else c["oid"])


def other_style(c, setting):
    """A binding subject naming the caller the way this setting does not."""
    if "group" in c:
        return ("Group", c["group_name"])
    if c["upn"]:  # a member: the upn when object ids are impersonated, and the reverse
        return ("User", c["oid"] if setting == "upn" else c["upn"])
    return ("User", c["alt"])  # no upn to map to: the UPN-style or app id name never matches


def matching_style(c, setting):
    if "group" in c:
        return ("Group", c["group"])
    return ("User", seen_as(c, setting))


def tag_of(setting, kind, style):
    return "%s-%s-%s" % (kind, setting, style)


def binding(name, kind, subject):
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}]}


class Env:
    pass


def start_agent(e, hc, extra):
    log = open(os.path.join(e.dir, "agent-%s.log" % hc), "w")
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        health = sk.getsockname()[1]
    k = e.kube
    p = subprocess.Popen([
        os.path.join(BUILD, "bin", "clusterconnect-agent"), "--relay", e.hub.url(), "--hybrid-connection", hc,
        "--key-name", "root", "--key-file", e.keyfile, "--relay-ca", e.hub.ca,
        "--apiserver", "https://127.0.0.1:%d" % k.port, "--apiserver-ca", os.path.join(k.dir, "ca.pem"),
        "--token-file", e.agent_token, "--issuer", e.issuer.issuer, "--audience", e.issuer.audience,
        "--jwks-file", e.issuer.jwks_file, "--health-listen", "127.0.0.1:%d" % health, "--ping-interval", "1",
        *extra], stdout=log, stderr=subprocess.STDOUT)
    p.log_path = log.name
    e.agents[hc] = p
    return p


def write_config(e, name, cfg):
    path = os.path.join(e.dir, name)
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


@pytest.fixture(scope="module")
def env():
    e = Env()
    e.dir = tempfile.mkdtemp(prefix="ck-ident-")
    e.kube = KubeCluster(os.path.join(e.dir, "kube")).start()
    k = e.kube
    k.kubectl("create", "serviceaccount", "clusterconnect-agent", "-n", "kube-system")
    rbac = os.path.join(e.dir, "rbac.yaml")
    with open(rbac, "w") as f:
        f.write(AGENT_RBAC)
    k.kubectl("apply", "-f", rbac)
    token = k.kubectl("create", "token", "clusterconnect-agent", "-n", "kube-system", "--duration=2h").stdout.strip()
    e.agent_token = os.path.join(e.dir, "agent.token")
    with open(e.agent_token, "w") as f:
        f.write(token)
    k.kubectl("create", "clusterrole", "pod-reader", "--verb=get,list,watch", "--resource=pods")
    # Every binding at once: for each setting, kind and style, the caller
    # of that combination is bound in that style and in no other.
    items = []
    for setting in SETTINGS:
        for kind in KINDS:
            for style in STYLES:
                tag = tag_of(setting, kind, style)
                c = caller(kind, tag)
                subj = matching_style(c, setting) if style == "matching" else other_style(c, setting)
                items.append(binding("b-" + tag.lower().replace("_", "-"), *subj))
    p = caller("member", "prefixed")
    g = caller("group", "prefixed-group")
    items += [binding("b-prefixed", "User", "aad:" + p["upn"]),
              binding("b-prefixed-unprefixed", "User", p["upn"]),  # must not match
              binding("b-prefixed-group", "Group", "aadgroup:" + g["group"])]
    bindings = write_config(e, "bindings.json", {"apiVersion": "v1", "kind": "List", "items": items})
    k.kubectl("apply", "-f", bindings)
    e.issuer = TestIssuer(e.dir)
    os.makedirs(os.path.join(e.dir, "hub"))
    e.hub = start_hub(os.path.join(e.dir, "hub"), ["--ping-interval", "1"], config={
        "namespaceRules": [{"name": "root", "key": ROOT_KEY, "rights": ["Listen", "Send", "Manage"]}],
        "hybridConnections": [{"name": "ident-upn"}, {"name": "ident-oid"}, {"name": "ident-prefix"}]})
    e.keyfile = os.path.join(e.dir, "relay.key")
    with open(e.keyfile, "w") as f:
        f.write(ROOT_KEY)
    e.agents = {}
    start_agent(e, "ident-upn", [])
    start_agent(e, "ident-oid", ["--config", write_config(e, "oid.json", {"username-claim": "oid"})])
    start_agent(e, "ident-prefix", [
        "--config", write_config(e, "prefix.json", {"username-claim": "oid", "username-prefix": "wrong:",
                                                    "groups-prefix": "aadgroup:"}),
        "--username-claim", "upn", "--username-prefix=aad:"])  # the --NAME=VALUE form, as Deployments write it
    deadline = time.time() + 15
    while e.hub.metric("arc_relay_listeners") < 2 * len(e.agents):
        for p in e.agents.values():
            assert p.poll() is None, open(p.log_path).read()
        assert time.time() < deadline, "agents did not listen"
        time.sleep(0.1)
    e.pipes = {hc: RelayPipe(e.hub, hc, e.hub.token(hc)) for hc in e.agents}
    yield e
    for pipe in e.pipes.values():
        pipe.close()
    for p in e.agents.values():
        p.terminate()
        p.wait(10)
    stop_hub(e.hub)
    e.kube.stop()
    shutil.rmtree(e.dir, ignore_errors=True)


def kubectl(env, hc, token, *args):
    kc = os.path.join(env.dir, "user-%s-%d.kubeconfig" % (hc, hash(token) & 0xffffff))
    with open(kc, "w") as f:
        f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:%d', "
                "certificate-authority: '%s'}\nusers:\n- name: u\n  user: {token: '%s'}\ncontexts:\n- name: c\n"
                "  context: {cluster: c, user: u}\ncurrent-context: c\n" % (env.pipes[hc].port, env.hub.ca, token))
    return subprocess.run([env.kube.kubectl_path, "--kubeconfig", kc, "--request-timeout=20s", *args],
                          capture_output=True, text=True, timeout=60)


def agent_log(env, hc):
    with open(env.agents[hc].log_path) as f:
        return f.read()


def forbidden(user):
    return 'User "%s" cannot list resource "pods" in API group "" at the cluster scope' % user


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("setting", SETTINGS)
def test_binding_style_decides(env, setting, kind, style):
    c = caller(kind, tag_of(setting, kind, style))
    hc = "ident-" + setting
    tok = env.issuer.mint(c["oid"], **c["mint"])
    r = kubectl(env, hc, tok, "get", "pods", "-A")
    if style == "matching":
        assert r.returncode == 0, r.stderr + agent_log(env, hc)[-2000:]
    else:
        assert r.returncode != 0, r.stdout
        assert forbidden(seen_as(c, setting)) in r.stderr, r.stderr
    # The audit line names whom the API server saw, the kind and the
    # object id; never the token.
    want_kind = {"member": "user", "group": "user", "guest": "guest"}.get(kind, "app")
    line = '"user":"%s","kind":"%s","oid":"%s"' % (seen_as(c, setting), want_kind, c["oid"])
    log = agent_log(env, hc)
    assert line in log, log[-2000:]
    assert tok not in log and tok.split(".")[1] not in log


def test_command_line_wins_over_config_and_prefixes_apply(env):
    hc = "ident-prefix"
    p = caller("member", "prefixed")
    r = kubectl(env, hc, env.issuer.mint(p["oid"], **p["mint"]), "get", "pods", "-A")
    assert r.returncode == 0, r.stderr + agent_log(env, hc)[-2000:]
    assert '"user":"aad:prefixed@contoso.example"' in agent_log(env, hc)
    # The prefixed agent's members are not the unprefixed names.
    q = caller("member", "member-upn-other")  # bound by oid only, for the upn agent
    r = kubectl(env, hc, env.issuer.mint(q["oid"], **q["mint"]), "get", "pods", "-A")
    assert r.returncode != 0 and forbidden("aad:" + q["upn"]) in r.stderr, r.stderr
    g = caller("group", "prefixed-group")
    r = kubectl(env, hc, env.issuer.mint(g["oid"], **g["mint"]), "get", "pods", "-A")
    assert r.returncode == 0, r.stderr  # through the aadgroup: binding only
    # Apps are prefixed too, and stay object ids.
    a = caller("service-principal", "service-principal-upn-matching")  # bound as its bare oid
    r = kubectl(env, hc, env.issuer.mint(a["oid"], **a["mint"]), "get", "pods", "-A")
    assert r.returncode != 0 and forbidden("aad:" + a["oid"]) in r.stderr, r.stderr


def test_a_v2_member_token_with_idtyp_user_is_its_upn(env):
    c = caller("member", "member-upn-matching")  # bound by upn
    tok = env.issuer.mint(c["oid"], **dict(c["mint"], idtyp="user", extra={"scp": "access", "azp": AZURE_CLI}))
    r = kubectl(env, "ident-upn", tok, "get", "pods", "-A")
    assert r.returncode == 0, r.stderr


def test_unusable_user_name_is_refused_not_cut(env):
    """A upn with a line break would end the Impersonate-User header: the
    caller is refused with 401 and nothing reaches the API server."""
    tok = env.issuer.mint("oid-crlf", upn="eve@contoso.example\r\nImpersonate-Group: system:masters",
                          extra={"scp": "x"})
    r = kubectl(env, "ident-upn", tok, "get", "pods", "-A")
    assert r.returncode != 0 and ("Unauthorized" in r.stderr or "must be logged in" in r.stderr), r.stderr


def test_bad_username_claim_is_refused_at_start():
    r = subprocess.run([os.path.join(BUILD, "bin", "clusterconnect-agent"), "--username-claim", "email"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "--username-claim is upn or oid" in r.stderr
