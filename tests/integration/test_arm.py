"""arc-hub's control plane with the real az: offline sign-in by both
routes, connectedClusters CRUD, listClusterUserCredential and who may call
it, role assignments, durability across SIGKILL, and bad input."""
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pytest

from azcli import Az, dev_directory
from conftest import BUILD, start_hub
from issuer import TestIssuer
import wsclient

API = "2024-01-01"
CUR = "00493d72-78f6-4148-b6c5-d3ce8e4799dd"  # Azure Arc Enabled Kubernetes Cluster User Role
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


@pytest.fixture(scope="module")
def env():
    d = tempfile.mkdtemp(prefix="ck-arm-")
    ids, directory = dev_directory()
    with open(os.path.join(d, "directory.json"), "w") as f:
        json.dump(directory, f)
    # An external OIDC issuer (Entra's shape) the control plane also trusts.
    os.makedirs(os.path.join(d, "entra"))
    entra = TestIssuer(os.path.join(d, "entra"), issuer="https://login.example.test/%s/v2.0" % ids["tenant"],
                       audience="https://management.example.test/")
    env_trust = ["--trust-issuer", entra.issuer, "--trust-audience", entra.audience,
                 "--trust-jwks-file", entra.jwks_file]
    hub = start_hub(d, ["--credential-ttl", "600", *env_trust])
    hub.entra, hub.trust_args = entra, env_trust
    admin = Az(hub)
    admin.login_sp(ids["admin_app"], directory["principals"][0]["secret"], ids["tenant"])
    yield hub, ids, admin, d
    admin.close()
    hub.proc.terminate()
    hub.proc.wait(10)
    shutil.rmtree(d, ignore_errors=True)


def cluster_id(ids, rg="rg1", name="c1"):
    return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Kubernetes/connectedClusters/%s" % (
        ids["sub"], rg, name)


def raw(hub, method, path, body=b"", token=None, headers=None):
    """One HTTPS request without az, for inputs az would never send."""
    ctx = ssl.create_default_context(cafile=hub.ca)
    req = urllib.request.Request("https://127.0.0.1:%d%s" % (hub.port, path), data=body or None, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def token(az, resource=None):
    return az.json("account", "get-access-token", *(["--resource", resource] if resource else []))["accessToken"]


def test_service_principal_login_lists_the_subscription(env):
    hub, ids, admin, _ = env
    acct = admin.json("account", "show")
    assert acct["id"] == ids["sub"] and acct["tenantId"] == ids["tenant"]
    assert acct["user"] == {"name": ids["admin_app"], "type": "servicePrincipal"}


def test_cluster_lifecycle_through_az_rest(env):
    hub, ids, admin, _ = env
    cid = cluster_id(ids)
    created = json.loads(admin.rest("put", cid, {"location": "westeurope", "tags": {"team": "a"},
                                                 "properties": {"agentPublicKeyCertificate": "MIIBCgKCAQEA"}}).stdout)
    assert created["id"] == cid and created["type"] == "Microsoft.Kubernetes/connectedClusters"
    assert created["properties"]["provisioningState"] == "Succeeded"
    assert created["properties"]["connectivityStatus"] == "Connecting"  # no agent has listened yet
    assert created["identity"]["type"] == "SystemAssigned"
    got = json.loads(admin.rest("get", cid).stdout)
    assert got["tags"] == {"team": "a"} and got["location"] == "westeurope"
    # Lists by group and by subscription.
    by_rg = json.loads(admin.rest("get", cid.rsplit("/", 1)[0]).stdout)["value"]
    by_sub = json.loads(admin.rest(
        "get", "/subscriptions/%s/providers/Microsoft.Kubernetes/connectedClusters" % ids["sub"]).stdout)["value"]
    assert [c["name"] for c in by_rg] == ["c1"] and "c1" in [c["name"] for c in by_sub]
    patched = json.loads(admin.rest("patch", cid, {"tags": {"team": "b"}}).stdout)
    assert patched["tags"] == {"team": "b"}
    assert patched["properties"]["agentPublicKeyCertificate"] == "MIIBCgKCAQEA"
    # A second resource, then deleted; deleting again is a no-op (204).
    other = cluster_id(ids, name="gone")
    admin.rest("put", other, {"location": "x", "properties": {"agentPublicKeyCertificate": "AA"}})
    admin.rest("delete", other)
    r = admin.rest("get", other, check=False)
    assert r.returncode != 0 and "ResourceNotFound" in r.stderr
    assert admin.rest("delete", other).returncode == 0


def test_credential_needs_the_cluster_user_role(env):
    hub, ids, admin, _ = env
    cid = cluster_id(ids)
    # Reader on the group: alice can sign in (the subscription shows) and
    # read the cluster, but not get a credential for it.
    admin.rest("put", "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Authorization/roleAssignments/%s"
               % (ids["sub"], uuid.uuid4()),
               {"properties": {"roleDefinitionId": READER, "principalId": ids["alice"]}}, api="2022-04-01")
    alice = Az(hub)
    try:
        alice.login_msi(ids["alice"])
        assert alice.json("account", "show")["id"] == ids["sub"]
        assert json.loads(alice.rest("get", cid).stdout)["name"] == "c1"
        denied = alice.rest("post", cid + "/listClusterUserCredential", {"authenticationMethod": "AAD",
                                                                          "clientProxy": True}, check=False)
        assert denied.returncode != 0
        assert "AuthorizationFailed" in denied.stderr and "listClusterUserCredential/action" in denied.stderr
        assert "AuthorizationFailed" in alice.rest("put", cid, {"location": "x", "properties": {
            "agentPublicKeyCertificate": "AA"}}, check=False).stderr
        # The cluster user role at the cluster: allowed.
        ra = json.loads(admin.rest("put", cid + "/providers/Microsoft.Authorization/roleAssignments/%s" % uuid.uuid4(),
                                   {"properties": {"roleDefinitionId": CUR, "principalId": ids["alice"],
                                                   "principalType": "User"}}, api="2022-04-01").stdout)
        assert ra["properties"]["scope"] == cid
        dup = admin.rest("put", cid + "/providers/Microsoft.Authorization/roleAssignments/%s" % uuid.uuid4(),
                         {"properties": {"roleDefinitionId": CUR, "principalId": ids["alice"]}}, api="2022-04-01",
                         check=False)
        assert "RoleAssignmentExists" in dup.stderr
        cred = json.loads(alice.rest("post", cid + "/listClusterUserCredential",
                                     {"authenticationMethod": "AAD", "clientProxy": True}).stdout)
        hc = cred["hybridConnectionConfig"]
        assert hc["relay"] == "127.0.0.1:%d" % hub.port
        assert hc["token"].startswith("SharedAccessSignature ") and "skn=send" in hc["token"]
        assert 590 <= hc["expirationTime"] - time.time() <= 600  # --credential-ttl 600
        assert cred["kubeconfigs"][0]["name"] == "credentialUser"
        only_kc = json.loads(alice.rest("post", cid + "/listClusterUserCredential",
                                        {"authenticationMethod": "Token", "clientProxy": False}).stdout)
        assert list(only_kc) == ["kubeconfigs"]
        # The token is Send-only and scoped to this cluster's entity.
        name = hc["hybridConnectionName"]
        tok = hc["token"]
        s = wsclient.connect(hub.port, "/$hc/%s?sb-hc-action=listen" % name, {"ServiceBusAuthorization": tok},
                             ca=hub.ca)
        assert s[:2] == (403, "Forbidden: token lacks the required right."), s[:2]  # the key has Send only
        s = wsclient.connect(hub.port, "/$hc/other-entity?sb-hc-action=connect", {"ServiceBusAuthorization": tok},
                             ca=hub.ca)
        # Its key (skn=send) belongs to this cluster's entity: elsewhere it is unknown.
        assert s[:2] == (401, "Unauthorized: unknown key name."), s[:2]
        # Bob, with no role anywhere, sees no subscription and no cluster.
        bob = Az(hub)
        try:
            bob.env["MSI_ENDPOINT"] = bob.base + "/msi/token"
            r = bob.run("login", "--identity", "--username", ids["bob"], check=False)
            assert r.returncode != 0 and "no subscriptions were found" in (r.stderr + r.stdout)
        finally:
            bob.close()
    finally:
        alice.close()


def test_group_assignment_and_overage(env):
    """Carol's 250 groups do not fit in her token (Entra's overage marker);
    a role granted to one of them still applies, from the directory."""
    hub, ids, admin, d = env
    directory = json.load(open(os.path.join(d, "directory.json")))
    carol = next(p for p in directory["principals"] if p["objectId"] == ids["carol"])
    cid = cluster_id(ids)
    admin.rest("put", cid + "/providers/Microsoft.Authorization/roleAssignments/%s" % uuid.uuid4(),
               {"properties": {"roleDefinitionId": CUR, "principalId": carol["groups"][123],
                               "principalType": "Group"}}, api="2022-04-01")
    az = Az(hub)
    try:
        az.login_msi(ids["carol"])
        tok = token(az)
        claims = json.loads(__import__("base64").urlsafe_b64decode(tok.split(".")[1] + "==="))
        assert "groups" not in claims and claims["_claim_names"] == {"groups": "src1"}
        cred = json.loads(az.rest("post", cid + "/listClusterUserCredential", {}).stdout)
        assert cred["hybridConnectionConfig"]["token"]
    finally:
        az.close()


def test_bad_input_changes_nothing(env):
    hub, ids, admin, d = env
    cid = cluster_id(ids)
    tok = token(admin)
    before = raw(hub, "GET", cid + "?api-version=" + API, token=tok)
    assert before[0] == 200
    put = cid + "?api-version=" + API
    cases = [
        ("PUT", put, b"{not json", 400, "InvalidRequestContent"),
        ("PUT", put, b'{"properties":{"agentPublicKeyCertificate":"x"}}', 400, "LocationRequired"),
        ("PUT", put, b'{"location":"x","properties":{"agentPublicKeyCertificate":"x","connectivityStatus":"Connected"}}',
         400, "InvalidRequestContent"),
        ("PUT", cid + "?api-version=2019-01-01", b"{}", 400, "InvalidApiVersionParameter"),
        ("GET", cid, b"", 400, "MissingApiVersionParameter"),
        ("PATCH", put, b'{"location":"elsewhere"}', 400, "InvalidRequestContent"),
        ("PATCH", put, b"[]", 400, "InvalidRequestContent"),
        ("PUT", cid.rsplit("/", 1)[0] + "/..%2F..%2Fx?api-version=" + API, b"{}", 400, "InvalidResourceId"),
        ("PUT", cid.rsplit("/", 1)[0] + "/a%2Fb?api-version=" + API, b"{}", 400, "InvalidResourceId"),
        ("PUT", cid.rsplit("/", 1)[0] + "/-bad?api-version=" + API, b"{}", 400, "InvalidResourceName"),
        ("PUT", cid.rsplit("/", 1)[0] + "/" + "x" * 64 + "?api-version=" + API, b"{}", 400, "InvalidResourceName"),
        ("PUT", "/subscriptions/%s/resourceGroups/rg1./providers/Microsoft.Kubernetes/connectedClusters/c1?api-version=%s"
         % (ids["sub"], API), b"{}", 400, "InvalidResourceGroupName"),
        ("GET", "/subscriptions/%s?api-version=2020-01-01" % uuid.uuid4(), b"", 404, "SubscriptionNotFound"),
        ("PUT", cid + "/providers/Microsoft.Authorization/roleAssignments/%s?api-version=2022-04-01" % uuid.uuid4(),
         b'{"properties":{"roleDefinitionId":"no-such-role","principalId":"%s"}}' % ids["bob"].encode(), 400,
         "RoleDefinitionDoesNotExist"),
    ]
    for method, path, body, status, code in cases:
        got = raw(hub, method, path, body, token=tok, headers={"Content-Type": "application/json"})
        assert got[0] == status and got[1]["error"]["code"] == code, (method, path, body[:60], got)
    # Oversized body: the hub answers 413 from the head alone, before any
    # of the announced 2 MiB is read (a raw socket, so the answer is seen).
    import socket
    with socket.create_connection(("127.0.0.1", hub.port), timeout=10) as sock:
        with ssl.create_default_context(cafile=hub.ca).wrap_socket(sock, server_hostname="127.0.0.1") as t:
            t.sendall(("PUT %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\n"
                       "Content-Length: %d\r\n\r\n{" % (put, tok, 2 << 20)).encode())
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = t.recv(4096)
                if not chunk:
                    break
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "RequestEntityTooLarge"
    # Tokens: none, garbage, another issuer's, the right issuer for another audience.
    assert raw(hub, "GET", put)[1]["error"]["code"] == "AuthenticationFailed"
    assert raw(hub, "GET", put, token="abc.def.ghi")[1]["error"]["code"] == "InvalidAuthenticationToken"
    foreign = TestIssuer(d, issuer=hub_issuer(hub), audience="https://127.0.0.1:%d/" % hub.port)
    forged = foreign.mint(ids["admin"])  # same iss and aud, signed by a key the hub never published
    assert raw(hub, "GET", put, token=forged)[0] == 401
    agent_aud = token(admin, "6256c85f-0aad-4d50-b960-e6e9b21efe35")
    assert raw(hub, "GET", put, token=agent_aud)[0] == 401
    after = raw(hub, "GET", cid + "?api-version=" + API, token=tok)
    for doc in (before[1], after[1]):
        doc["properties"].pop("lastConnectivityTime", None)
    assert after == before


def hub_issuer(hub):
    ctx = ssl.create_default_context(cafile=hub.ca)
    with urllib.request.urlopen("https://127.0.0.1:%d/adfs/.well-known/openid-configuration" % hub.port,
                                context=ctx) as r:
        return json.loads(r.read())["issuer"]


def test_sigkill_loses_nothing_acknowledged(env):
    hub, ids, admin, d = env
    names = ["k%d" % i for i in range(5)]
    for n in names:
        admin.rest("put", cluster_id(ids, rg="durable", name=n),
                   {"location": "x", "properties": {"agentPublicKeyCertificate": "AA"}})
    ra_path = cluster_id(ids, rg="durable", name="k4") + "/providers/Microsoft.Authorization/roleAssignments/" + \
        str(uuid.uuid4())
    admin.rest("put", ra_path, {"properties": {"roleDefinitionId": CUR, "principalId": ids["bob"]}}, api="2022-04-01")
    cred_before = json.loads(admin.rest("post", cluster_id(ids, rg="durable", name="k2") +
                                        "/listClusterUserCredential", {}).stdout)
    hub.proc.send_signal(signal.SIGKILL)
    hub.proc.wait(5)
    restarted = start_hub(d, ["--credential-ttl", "600", *hub.trust_args], port=hub.port)
    hub.proc = restarted.proc
    listed = json.loads(admin.rest("get", "/subscriptions/%s/resourceGroups/durable/providers/"
                                   "Microsoft.Kubernetes/connectedClusters" % ids["sub"]).stdout)["value"]
    assert sorted(c["name"] for c in listed) == names
    assert json.loads(admin.rest("get", ra_path, api="2022-04-01").stdout)["properties"]["principalId"] == ids["bob"]
    cred_after = json.loads(admin.rest("post", cluster_id(ids, rg="durable", name="k2") +
                                       "/listClusterUserCredential", {}).stdout)
    # Same entity and keys after the restart: credentials already handed out keep working.
    assert cred_after["hybridConnectionConfig"]["hybridConnectionName"] == \
        cred_before["hybridConnectionConfig"]["hybridConnectionName"]
    tok = cred_before["hybridConnectionConfig"]["token"]
    name = cred_before["hybridConnectionConfig"]["hybridConnectionName"]
    s = wsclient.connect(hub.port, "/$hc/%s?sb-hc-action=connect" % name, {"ServiceBusAuthorization": tok}, ca=hub.ca)
    # Authorized: the hub got as far as looking for a listener (none yet, so not 101).
    assert s[:2] == (404, "There are no listeners connected for the endpoint."), s[:2]


def test_tokens_from_a_trusted_external_issuer(env):
    """A deployment that points the control plane at Entra ID (here a test
    issuer in Entra's shape, --trust-issuer): its users are authorized by
    role assignments like the hub's own, through their groups too; its
    tokens for another audience, or signed by another key, are refused."""
    hub, ids, admin, _ = env
    entra = hub.entra
    cid = cluster_id(ids, rg="ext", name="e1")
    admin.rest("put", cid, {"location": "x", "properties": {"agentPublicKeyCertificate": "AA"}})
    group = str(uuid.uuid4())
    admin.rest("put", cid + "/providers/Microsoft.Authorization/roleAssignments/%s" % uuid.uuid4(),
               {"properties": {"roleDefinitionId": CUR, "principalId": group, "principalType": "Group"}},
               api="2022-04-01")
    user = str(uuid.uuid4())
    path = cid + "/listClusterUserCredential?api-version=" + API
    ok = raw(hub, "POST", path, b"{}", token=entra.mint(user, groups=[group]),
             headers={"Content-Type": "application/json"})
    assert ok[0] == 200 and ok[1]["hybridConnectionConfig"]["token"], ok
    assert raw(hub, "POST", path, b"{}", token=entra.mint(user), headers={"Content-Type": "application/json"})[0] == 403
    assert raw(hub, "POST", path, b"{}", token=entra.mint(user, groups=[group], aud="api://other"))[0] == 401
    forged = entra.mint(user, groups=[group], key=entra.other_key)
    assert raw(hub, "POST", path, b"{}", token=forged)[0] == 401


def test_without_the_demo_issuer_only_trusted_issuers_open_the_control_plane(env):
    """--no-demo-issuer (a production hub): the demo issuer's endpoints are
    gone and a token it minted no longer opens ARM, while the trusted
    external issuer's tokens still do. Both hubs here use the first hub's
    public URL and signing key, so the demo token is valid in every other
    respect: the hub started the same way without the flag accepts it."""
    hub, ids, admin, d = env
    demo = token(admin)
    public = ["--public-url", "https://127.0.0.1:%d" % hub.port]
    subs = "/subscriptions?api-version=2022-12-01"

    def hub_like_the_first(*extra):
        pd = tempfile.mkdtemp(prefix="ck-arm-prod-")
        for name in ("directory.json", "idp.key"):
            shutil.copy(os.path.join(d, name), os.path.join(pd, name))
        return start_hub(pd, [*public, *hub.trust_args, *extra]), pd

    with_demo, d1 = hub_like_the_first()
    prod, d2 = hub_like_the_first("--no-demo-issuer")
    try:
        ok = raw(with_demo, "GET", subs, token=demo)
        assert ok[0] == 200 and [s["subscriptionId"] for s in ok[1]["value"]] == [ids["sub"]], ok
        refused = raw(prod, "GET", subs, token=demo)
        assert refused[0] == 401 and refused[1]["error"]["code"] == "InvalidAuthenticationToken", refused
        entra = raw(prod, "GET", subs, token=hub.entra.mint(ids["admin"]))
        assert entra[0] == 200 and [s["subscriptionId"] for s in entra[1]["value"]] == [ids["sub"]], entra
        for method, path in (("GET", "/adfs/.well-known/openid-configuration"), ("GET", "/adfs/discovery/keys"),
                             ("POST", "/adfs/oauth2/token"), ("POST", "/msi/token")):
            assert raw(with_demo, method, path)[0] != 404, path
            gone = raw(prod, method, path)
            assert gone[0] == 404 and gone[1]["error"]["code"] == "NotFound", (path, gone)
    finally:
        for h, pd in ((with_demo, d1), (prod, d2)):
            h.proc.terminate()
            h.proc.wait(10)
            shutil.rmtree(pd, ignore_errors=True)
    # Without a trusted issuer a hub without the demo one would admit nobody.
    pd = tempfile.mkdtemp(prefix="ck-arm-prod-")
    try:
        shutil.copy(os.path.join(d, "directory.json"), os.path.join(pd, "directory.json"))
        r = subprocess.run([os.path.join(BUILD, "bin", "arc-hub"), "--dev", pd, "--listen", "127.0.0.1:0",
                            "--no-demo-issuer"], capture_output=True, text=True, timeout=20)
        assert r.returncode == 2 and "--no-demo-issuer needs --trust-issuer" in r.stderr, r.stderr
    finally:
        shutil.rmtree(pd, ignore_errors=True)


def test_heartbeats_show_at_once_and_survive_a_clean_restart(env, tmp_path):
    """An agent's heartbeat is kept in memory (no synchronous write on the
    hub's loop): GET shows it at once; the hub writes it in the background
    and at a clean stop, so a restarted hub still knows what the agent
    reported and when it was last seen."""
    import base64

    hub, ids, admin, d = env
    cid = cluster_id(ids, rg="beats", name="b1")
    base = "https://127.0.0.1:%d" % hub.port
    ident = TestIssuer(str(tmp_path), issuer=cid, audience=base + "/agent", kid="agent")
    pub = subprocess.run(["openssl", "rsa", "-in", ident.key, "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    admin.rest("put", cid, {"location": "x", "properties": {"agentPublicKeyCertificate": base64.b64encode(pub).decode()}})
    shown = json.loads(admin.rest("get", cid).stdout)["properties"]
    assert shown["connectivityStatus"] == "Connecting" and "agentVersion" not in shown, shown
    beat = raw(hub, "POST", "/agent/v1/heartbeat",
               json.dumps({"agentVersion": "9.9.9", "kubernetesVersion": "v1.99.0", "totalNodeCount": 4}).encode(),
               token=ident.mint(cid, ttl=120, extra={"sub": cid}), headers={"Content-Type": "application/json"})
    assert beat[0] == 200 and beat[1]["hybridConnectionName"], beat
    shown = json.loads(admin.rest("get", cid).stdout)["properties"]
    assert (shown["connectivityStatus"], shown["agentVersion"], shown["kubernetesVersion"], shown["totalNodeCount"]) \
        == ("Connected", "9.9.9", "v1.99.0", 4), shown
    seen = shown["lastConnectivityTime"]
    assert seen and shown["arcAgentProfile"]["agentState"] == "Succeeded", shown
    hub.proc.send_signal(signal.SIGTERM)
    assert hub.proc.wait(10) == 0
    restarted = start_hub(d, ["--credential-ttl", "600", *hub.trust_args], port=hub.port)
    hub.proc = restarted.proc
    after = json.loads(admin.rest("get", cid).stdout)["properties"]
    assert (after["connectivityStatus"], after["agentVersion"], after["kubernetesVersion"], after["totalNodeCount"],
            after["lastConnectivityTime"]) == ("Connected", "9.9.9", "v1.99.0", 4, seen), after
    listed = json.loads(admin.rest("get", "/subscriptions/%s/resourceGroups/beats/providers/"
                                   "Microsoft.Kubernetes/connectedClusters" % ids["sub"]).stdout)["value"]
    assert [c["properties"]["agentVersion"] for c in listed] == ["9.9.9"], listed
