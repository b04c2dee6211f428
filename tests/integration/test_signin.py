"""People sign in to arc-hub's demo issuer with the real az, on Debian's
az 2.45 and on the newest az from PyPI: `az login -u/-p` and
`--use-device-code` (the code and password typed into the hub's
/adfs/devicelogin page by a plain HTTP client), tokens for every
audience az asks for later (ARM, the agent's, Graph) from the refresh
token, refreshing after the access token expired, a user whose only role
is at a resource group, the Graph calls of the walkthrough, bad input
(wrong password, expired and revoked refresh tokens), and the walkthrough
itself: the user signs in, binds itself by UPN, runs `az connectedk8s
proxy` and `kubectl get pods -A`; a user in 250 groups is authorized by
a binding to one of them."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from arcenv import AGENT_AUDIENCE, ArcEnv, Proxy
from azcli import AZ, PYPI_AZ, Az, dev_directory
from conftest import start_hub, stop_hub
from kube import free_port

READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
TOKEN_TTL = 4  # seconds: short enough to outlive in a test, so az must refresh


def az_versions():
    assert PYPI_AZ, "the PyPI azure-cli is not installed; run scripts/install-deps"
    return [pytest.param(AZ, id="az-2.45"), pytest.param(PYPI_AZ[-1], id="az-pypi")]


def claims(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class Env:
    """A hub with the test directory; alice holds Reader on resource group
    rg1 only, bob holds nothing."""

    def __init__(self, hub_args):
        self.dir = tempfile.mkdtemp(prefix="ck-signin-")
        self.ids, self.directory = dev_directory(n_groups_carol=3)
        with open(os.path.join(self.dir, "directory.json"), "w") as f:
            json.dump(self.directory, f)
        self.hub = start_hub(self.dir, hub_args)
        self.admin = Az(self.hub)
        self.admin.login_sp(self.ids["admin_app"], self.directory["principals"][0]["secret"], self.ids["tenant"])
        self.rg_scope = "/subscriptions/%s/resourceGroups/rg1" % self.ids["sub"]
        self.admin.rest("put", self.rg_scope + "/providers/Microsoft.Authorization/roleAssignments/%s" % uuid.uuid4(),
                        {"properties": {"roleDefinitionId": READER, "principalId": self.ids["alice"]}},
                        api="2022-04-01")
        self._az = [self.admin]

    def az(self, path):
        a = Az(self.hub, az=path)
        self._az.append(a)
        return a

    def close(self):
        for a in self._az:
            a.close()
        stop_hub(self.hub)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def env():
    e = Env(["--token-ttl", str(TOKEN_TTL)])
    yield e
    e.close()


@pytest.fixture(scope="module")
def short_env():
    """Sign-ins that last 6 seconds."""
    e = Env(["--token-ttl", "2", "--refresh-token-ttl", "6"])
    yield e
    e.close()


def token(az, resource):
    return az.json("account", "get-access-token", "--resource", resource)["accessToken"]


@pytest.mark.parametrize("azpath", az_versions())
def test_password_login_lists_the_subscription_of_a_resource_group_role(env, azpath):
    a = env.az(azpath)
    subs = a.login_user("alice@example.test", "alice-pw")
    assert [s["id"] for s in subs] == [env.ids["sub"]]
    assert subs[0]["user"] == {"name": "alice@example.test", "type": "user"}
    assert subs[0]["tenantId"] == env.ids["tenant"]
    acct = a.json("account", "list")
    assert [(s["id"], s["user"]["name"], s["isDefault"]) for s in acct] == [(env.ids["sub"], "alice@example.test", True)]
    # As on Azure, a user holding no role anywhere sees no subscription.
    r = env.az(azpath).login_user("bob@example.test", "bob-pw", check=False)
    assert r.returncode != 0 and "No subscriptions found for bob@example.test" in r.stderr, r.stderr


@pytest.mark.parametrize("azpath", az_versions())
def test_tokens_for_every_audience_and_the_graph_calls(env, azpath):
    a = env.az(azpath)
    a.login_user("alice@example.test", "alice-pw")
    for aud in (a.base + "/", AGENT_AUDIENCE, a.base + "/graph/"):
        c = claims(token(a, aud))
        assert c["aud"] == aud
        assert (c["oid"], c["upn"], c["tid"], c["idtyp"]) == (env.ids["alice"], "alice@example.test",
                                                              env.ids["tenant"], "user")
        assert c["iss"] == a.base + "/adfs"
    assert a.run("ad", "signed-in-user", "show", "--query", "id", "-o", "tsv").stdout.strip() == env.ids["alice"]
    assert a.run("ad", "signed-in-user", "show", "--query", "userPrincipalName",
                 "-o", "tsv").stdout.strip() == "alice@example.test"
    assert a.json("ad", "user", "show", "--id", "bob@example.test")["id"] == env.ids["bob"]
    assert a.json("ad", "user", "show", "--id", env.ids["bob"])["userPrincipalName"] == "bob@example.test"
    sp = a.json("ad", "sp", "show", "--id", env.ids["admin_app"])
    assert (sp["id"], sp["appId"]) == (env.ids["admin"], env.ids["admin_app"])
    assert a.json("ad", "sp", "show", "--id", env.ids["admin"])["appId"] == env.ids["admin_app"]
    r = a.run("ad", "user", "show", "--id", "nobody@example.test", check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr, r.stderr


@pytest.mark.parametrize("azpath", az_versions())
def test_access_tokens_are_refreshed_after_they_expire(env, azpath):
    a = env.az(azpath)
    a.login_user("alice@example.test", "alice-pw")
    first = token(a, a.base + "/")
    time.sleep(TOKEN_TTL + 1)
    assert claims(first)["exp"] < time.time()  # past its lifetime (verifiers allow a minute's skew)
    # az gets a new one with the refresh token, unasked.
    mark = len(env.hub.log())
    subs = json.loads(a.rest("get", "/subscriptions", api="2022-12-01").stdout)["value"]
    assert [s["subscriptionId"] for s in subs] == [env.ids["sub"]]
    later = [json.loads(x) for x in env.hub.log()[mark:].splitlines() if x.startswith("{")]
    assert any(e.get("event") == "idp.token" and e.get("grant") == "refresh_token" and
               e.get("oid") == env.ids["alice"] for e in later), later
    assert claims(token(a, a.base + "/"))["exp"] > claims(first)["exp"]


@pytest.mark.parametrize("azpath", az_versions())
def test_device_code_login_through_the_hub_page(env, azpath):
    a = env.az(azpath)
    r, status = a.login_device_code("alice@example.test", "alice-pw")
    assert status == 200 and r.returncode == 0, r.stderr
    assert "/adfs/devicelogin" in r.stderr
    assert [s["id"] for s in json.loads(r.stdout)] == [env.ids["sub"]]
    assert a.json("account", "show")["user"] == {"name": "alice@example.test", "type": "user"}
    assert claims(token(a, AGENT_AUDIENCE))["oid"] == env.ids["alice"]


def test_device_login_page_refuses_a_wrong_password_and_an_unknown_code(env):
    a = env.az(AZ)
    assert a.post_form(a.base + "/adfs/devicelogin", {"code": "BCDF-GHJK", "username": "alice@example.test",
                                                      "password": "alice-pw"}) == 400
    p = subprocess.Popen([a.az, "login", "--use-device-code"], env=a.env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = p.stderr.readline()
        code = line.split("enter the code ")[1].split()[0]
        assert a.post_form(a.base + "/adfs/devicelogin", {"code": code, "username": "alice@example.test",
                                                          "password": "wrong"}) == 401
        # Still pending: the right password with the code typed in lower case
        # and without its dash completes it.
        assert a.post_form(a.base + "/adfs/devicelogin", {"code": code.lower().replace("-", ""),
                                                          "username": "alice@example.test",
                                                          "password": "alice-pw"}) == 200
        out, err = p.communicate(timeout=90)
        assert p.returncode == 0, err
        # A code is used once.
        assert a.post_form(a.base + "/adfs/devicelogin", {"code": code, "username": "alice@example.test",
                                                          "password": "alice-pw"}) == 400
    finally:
        if p.poll() is None:
            p.kill()


@pytest.mark.parametrize("azpath", az_versions())
def test_wrong_password_is_a_clear_error(env, azpath):
    r = env.az(azpath).login_user("alice@example.test", "not-her-password", check=False)
    assert r.returncode != 0
    assert "invalid username or password" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("azpath", az_versions())
def test_revoked_sessions_make_az_ask_for_a_new_login(env, azpath):
    a = env.az(azpath)
    a.login_user("alice@example.test", "alice-pw")
    assert json.loads(a.graph("post", "/me/revokeSignInSessions").stdout)["value"] is True
    # A token for an audience az has not asked for yet needs the refresh
    # token, which is gone.
    r = a.run("account", "get-access-token", "--resource", "api://never-asked-" + azpath.split("/")[-3], check=False)
    assert r.returncode != 0
    assert "revoked" in r.stderr and "az login" in r.stderr, r.stderr
    # Signing in again works.
    a.login_user("alice@example.test", "alice-pw")
    assert claims(token(a, AGENT_AUDIENCE))["oid"] == env.ids["alice"]


def test_only_the_user_or_an_owner_ends_its_sessions(env):
    a = env.az(AZ)
    a.login_user("alice@example.test", "alice-pw")
    r = a.graph("post", "/users/%s/revokeSignInSessions" % env.ids["bob"], check=False)
    assert r.returncode != 0 and "Insufficient privileges" in r.stderr, r.stderr
    assert json.loads(env.admin.graph("post", "/users/bob@example.test/revokeSignInSessions").stdout)["value"] is True


@pytest.mark.parametrize("azpath", az_versions())
def test_expired_refresh_token_makes_az_ask_for_a_new_login(short_env, azpath):
    a = short_env.az(azpath)
    a.login_user("alice@example.test", "alice-pw")
    assert claims(token(a, AGENT_AUDIENCE))["oid"] == short_env.ids["alice"]
    time.sleep(7)
    r = a.run("account", "get-access-token", "--resource", AGENT_AUDIENCE, check=False)
    assert r.returncode != 0
    assert "refresh token has expired" in r.stderr and "az login" in r.stderr, r.stderr


# ---- the walkthrough, with a cluster -----------------------------------------

@pytest.fixture(scope="module", params=az_versions())
def arc(request):
    d = tempfile.mkdtemp(prefix="ck-signin-arc-")
    # carol is in 250 groups: the hub's tokens name an overage source
    # instead; the agent resolves it from its groups file.
    e = ArcEnv(d, az=request.param, n_groups_carol=250,
               agent_args=["--groups-file", "{dir}/groups.json"]).start()
    carol = next(p for p in e.directory["principals"] if p["name"] == "carol@example.test")
    with open(os.path.join(d, "groups.json"), "w") as f:
        json.dump({e.ids["carol"]: carol["groups"]}, f)
    e.carol_groups = carol["groups"]
    # Only at the cluster: enough to see the subscription and to get the
    # relay credential.
    e.grant(e.ids["alice"])
    e.grant(e.ids["carol"])
    yield e
    e.stop()
    shutil.rmtree(d, ignore_errors=True)


def kubectl(env, kubeconfig, *args):
    return subprocess.run([env.kube.kubectl_path, "--kubeconfig", kubeconfig, "--request-timeout=20s", *args],
                          capture_output=True, text=True, timeout=60)


def walkthrough_shell(env, user_az, script):
    """Runs a walkthrough line with bash as a user types it: this az first
    on PATH, the user's az profile, the cluster admin's kubeconfig."""
    bindir = os.path.join(env.dir, "bin-" + str(uuid.uuid4())[:8])
    os.makedirs(bindir)
    os.symlink(user_az.az, os.path.join(bindir, "az"))
    os.symlink(env.kube.kubectl_path, os.path.join(bindir, "kubectl"))
    e = dict(user_az.env)
    e.update({"PATH": bindir + ":" + os.environ["PATH"], "KUBECONFIG": env.kube.kubeconfig})
    return subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], env=e, capture_output=True, text=True,
                          timeout=180)


def test_walkthrough_user_binds_by_upn_and_runs_the_proxy(arc):
    alice = arc.az()
    subs = alice.login_user("alice@example.test", "alice-pw")
    assert [s["id"] for s in subs] == [arc.ids["sub"]]  # a role at the cluster only shows it
    kc = os.path.join(arc.dir, "alice.kubeconfig")
    port = free_port()
    p = Proxy(alice, kc, port).wait_ready()
    try:
        r = kubectl(arc, kc, "get", "pods", "-A")
        assert r.returncode != 0 and "Forbidden" in r.stderr and "alice@example.test" in r.stderr, r.stderr
        r = walkthrough_shell(arc, alice, """
AAD_ENTITY_ID=$(az ad signed-in-user show --query userPrincipalName -o tsv)
kubectl create clusterrolebinding demo-user-binding --clusterrole cluster-admin --user=$AAD_ENTITY_ID
""")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "demo-user-binding created" in r.stdout
        r = kubectl(arc, kc, "get", "pods", "-A")
        assert r.returncode == 0, r.stderr + p.text()
        assert '"user":"alice@example.test","kind":"user","oid":"%s"' % arc.ids["alice"] in open(arc.agent_log).read()
    finally:
        assert p.stop() == 0, p.text()
        arc.kube.kubectl("delete", "clusterrolebinding", "demo-user-binding", check=False)


def test_user_in_250_groups_is_authorized_by_one_of_them(arc):
    carol = arc.az()
    carol.login_user("carol@example.test", "carol-pw")
    c = claims(token(carol, AGENT_AUDIENCE))
    # Entra's overage: no groups in the token, a source to ask instead.
    assert "groups" not in c and c["_claim_names"] == {"groups": "src1"}, c
    assert c["_claim_sources"]["src1"]["endpoint"].endswith("/users/%s/getMemberObjects" % arc.ids["carol"])
    # That source answers the user with all 250.
    got = json.loads(carol.graph("post", "/users/%s/getMemberObjects" % arc.ids["carol"],
                                 {"securityEnabledOnly": False}).stdout)["value"]
    assert sorted(got) == sorted(arc.carol_groups) and len(got) == 250
    kc = os.path.join(arc.dir, "carol.kubeconfig")
    p = Proxy(carol, kc, free_port()).wait_ready()
    group = arc.carol_groups[137]
    try:
        r = kubectl(arc, kc, "get", "pods", "-A")
        assert r.returncode != 0 and "Forbidden" in r.stderr, r.stderr
        arc.kube.kubectl("create", "clusterrolebinding", "carol-group-reads", "--clusterrole=pod-reader",
                         "--group=" + group)
        r = kubectl(arc, kc, "get", "pods", "-A")
        assert r.returncode == 0, r.stderr + p.text() + open(arc.agent_log).read()[-2000:]
        r = kubectl(arc, kc, "delete", "pod", "-n", "kube-system", "nothing-here")
        assert r.returncode != 0 and "Forbidden" in r.stderr, r.stderr
    finally:
        assert p.stop() == 0, p.text()
        arc.kube.kubectl("delete", "clusterrolebinding", "carol-group-reads", check=False)


def test_role_assignment_create_resolves_users_and_apps_through_graph(env):
    """`az role assignment create --assignee` turns a UPN, an object id or
    an appId into an object id through the hub's Graph. With the PyPI az:
    az 2.45 itself fails at this command after the Graph lookups
    ("'RoleAssignmentsOperations' object has no attribute 'config'", a
    mismatch between Debian's azure-cli 2.45 and its packaged
    azure-mgmt-authorization), whatever the server answers."""
    admin = env.az(PYPI_AZ[-1])
    admin.login_sp(env.ids["admin_app"], env.directory["principals"][0]["secret"], env.ids["tenant"])
    scope = "/subscriptions/%s/resourceGroups/rg-graph" % env.ids["sub"]
    for assignee, oid in (("bob@example.test", env.ids["bob"]), (env.ids["carol"], env.ids["carol"]),
                          (env.ids["admin_app"], env.ids["admin"])):
        ra = admin.json("role", "assignment", "create", "--role", "Reader", "--assignee", assignee, "--scope", scope)
        assert ra["principalId"] == oid and ra["scope"] == scope
    # bob, who held nothing, now sees the subscription when he signs in.
    assert [s["id"] for s in env.az(AZ).login_user("bob@example.test", "bob-pw")] == [env.ids["sub"]]
    r = admin.run("role", "assignment", "create", "--role", "Reader", "--assignee", "nobody@example.test",
                  "--scope", scope, check=False)
    assert r.returncode != 0 and "nobody@example.test" in r.stderr, r.stderr


def test_graph_wants_a_graph_token_and_me_wants_a_person(env):
    import ssl
    import urllib.error
    import urllib.request
    ctx = ssl.create_default_context(cafile=env.hub.ca)
    arm_token = token(env.admin, env.admin.base + "/")
    for bearer in (None, arm_token):  # none, or one for another audience
        req = urllib.request.Request(env.admin.base + "/graph/v1.0/users",
                                     headers={"Authorization": "Bearer " + bearer} if bearer else {})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, context=ctx, timeout=10)
        assert e.value.code == 401 and json.loads(e.value.read())["error"]["code"] == "InvalidAuthenticationToken"
    r = env.admin.graph("get", "/me", check=False)
    assert r.returncode != 0 and "only valid with delegated authentication flow" in r.stderr, r.stderr
