"""The argument validators (azext_connectedk8s/_validators.py): accepted
values pass unchanged (or normalised, for --features), refused ones raise
InvalidArgumentValueError with a message naming the accepted values and a
recommendation; and _params.py wires each to its argument."""
from types import SimpleNamespace

import pytest

from extension import import_extension  # tests/extension.py: azure-cli-core for the tests' venv

import_extension()

from azure.cli.core.azclierror import InvalidArgumentValueError  # noqa: E402

from azext_connectedk8s import _validators as v  # noqa: E402


@pytest.mark.parametrize("port", [1, 80, 47011, 65535, None])
def test_port_accepted(port):
    ns = SimpleNamespace(api_server_port=port)
    v.validate_port(ns)
    assert ns.api_server_port == port


@pytest.mark.parametrize("port", [0, -1, 65536, 100000])
def test_port_refused(port):
    with pytest.raises(InvalidArgumentValueError) as ei:
        v.validate_port(SimpleNamespace(api_server_port=port))
    assert type(ei.value) is InvalidArgumentValueError
    assert str(ei.value) == "--port must be between 1 and 65535; got %d." % port
    assert ei.value.recommendations == ["Give a free local TCP port, e.g. --port 47011 (the default)."]


@pytest.mark.parametrize("pool", [0, 1, 2, 16, None])
def test_pool_size_accepted(pool):
    ns = SimpleNamespace(pool=pool)
    v.validate_pool_size(ns)
    assert ns.pool == pool


@pytest.mark.parametrize("pool", [-1, 17, 1000])
def test_pool_size_refused(pool):
    with pytest.raises(InvalidArgumentValueError) as ei:
        v.validate_pool_size(SimpleNamespace(pool=pool))
    assert type(ei.value) is InvalidArgumentValueError
    assert str(ei.value) == "--pool-size must be between 0 and 16; got %d." % pool
    assert ei.value.recommendations == ["Use 0 to open a relay connection per kubectl connection, or up to 16 to "
                                        "keep that many ready (default 2)."]


@pytest.mark.parametrize("values,names", [
    (["cluster-connect"], ["cluster-connect"]),
    (["Cluster-Connect"], ["cluster-connect"]),
    (["AZURE-RBAC", "custom-locations"], ["azure-rbac", "custom-locations"]),
    (["cluster-connect,azure-rbac"], ["cluster-connect", "azure-rbac"]),
    ([" cluster-connect , Custom-Locations "], ["cluster-connect", "custom-locations"]),
    (["azure-rbac", "azure-rbac"], ["azure-rbac", "azure-rbac"]),  # repeats kept, as before validators existed
])
def test_features_accepted_and_normalised(values, names):
    ns = SimpleNamespace(features=list(values))
    v.validate_features(ns)
    assert ns.features == names
    v.validate_features(ns)  # idempotent: the command sees the same list whatever ran before
    assert ns.features == names


@pytest.mark.parametrize("values,message", [
    (["bogus"], "Unknown feature 'bogus'. Use one or more of: cluster-connect, azure-rbac, custom-locations."),
    (["cluster-connect", "Bogus"],
     "Unknown feature 'bogus'. Use one or more of: cluster-connect, azure-rbac, custom-locations."),
    (["cluster_connect"],
     "Unknown feature 'cluster_connect'. Use one or more of: cluster-connect, azure-rbac, custom-locations."),
    (["cluster-connect,"],
     "Empty feature name in '--features cluster-connect,'. Use one or more of: cluster-connect, azure-rbac, "
     "custom-locations."),
    ([""], "Empty feature name in '--features '. Use one or more of: cluster-connect, azure-rbac, custom-locations."),
])
def test_features_refused(values, message):
    with pytest.raises(InvalidArgumentValueError) as ei:
        v.validate_features(SimpleNamespace(features=list(values)))
    assert type(ei.value) is InvalidArgumentValueError
    assert str(ei.value) == message
    assert ei.value.recommendations == ["Separate names with spaces or commas, e.g. --features cluster-connect "
                                        "azure-rbac."]


def test_features_are_what_the_command_knows():
    from azext_connectedk8s import custom
    assert custom.FEATURES is v.FEATURES
    assert set(custom._features_of({})) == set(v.FEATURES)


class _Context:
    def __init__(self, registry, scope):
        self.registry, self.scope = registry, scope

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def argument(self, dest, **settings):
        self.registry.setdefault(self.scope, {})[dest] = settings


class _Loader:
    """Records what _params.load_arguments declares, per scope."""

    def __init__(self):
        self.registry = {}

    def argument_context(self, scope):
        return _Context(self.registry, scope)


def test_params_wire_each_validator_to_its_argument():
    from azext_connectedk8s import _params
    loader = _Loader()
    _params.load_arguments(loader, None)
    reg = loader.registry
    assert reg["connectedk8s proxy"]["api_server_port"]["validator"] is v.validate_port
    assert reg["connectedk8s proxy"]["pool"]["validator"] is v.validate_pool_size
    for scope in ("connectedk8s enable-features", "connectedk8s disable-features"):
        assert reg[scope]["features"]["validator"] is v.validate_features
    for dest in ("username_prefix", "groups_prefix"):
        assert reg["connectedk8s connect"][dest]["validator"] is v.validate_identity_prefixes
    proxy_dests = ("proxy_https", "proxy_http", "proxy_skip_range", "proxy_cert")
    for dest in proxy_dests:
        assert reg["connectedk8s connect"][dest]["validator"] is v.validate_proxy_settings
    # Nothing else carries a validator by accident.
    wired = {(s, d) for s, args in reg.items() for d, kw in args.items() if "validator" in kw}
    assert wired == {("connectedk8s proxy", "api_server_port"), ("connectedk8s proxy", "pool"),
                     ("connectedk8s enable-features", "features"), ("connectedk8s disable-features", "features"),
                     ("connectedk8s connect", "username_prefix"), ("connectedk8s connect", "groups_prefix")} | {
                         ("connectedk8s connect", d) for d in proxy_dests}


def test_proxy_defaults_pass_the_validators():
    import inspect
    from azext_connectedk8s import custom
    params = inspect.signature(custom.proxy).parameters
    ns = SimpleNamespace(api_server_port=params["api_server_port"].default, pool=params["pool"].default)
    v.validate_port(ns)
    v.validate_pool_size(ns)
    assert (ns.api_server_port, ns.pool) == (47011, 2)


@pytest.mark.parametrize("prefix", [None, "", "aad:", "oidc:contoso/"])
def test_identity_prefixes_accepted(prefix):
    ns = SimpleNamespace(username_prefix=prefix, groups_prefix=prefix)
    v.validate_identity_prefixes(ns)
    assert (ns.username_prefix, ns.groups_prefix) == (prefix, prefix)


@pytest.mark.parametrize("opt,attr", [("--username-prefix", "username_prefix"), ("--groups-prefix", "groups_prefix")])
def test_identity_prefixes_refused(opt, attr):
    ns = SimpleNamespace(username_prefix=None, groups_prefix=None)
    setattr(ns, attr, "aad:\r\nImpersonate-Group: system:masters")
    with pytest.raises(InvalidArgumentValueError) as ei:
        v.validate_identity_prefixes(ns)
    assert str(ei.value) == "%s must not contain control characters." % opt


def test_connect_identity_settings_reach_the_agents_configmap():
    import inspect
    from azext_connectedk8s import _manifests, custom
    params = inspect.signature(custom.connect).parameters
    assert (params["username_claim"].default, params["username_prefix"].default,
            params["groups_prefix"].default) == ("upn", "", "")
    objs = _manifests.agent_objects("https://hub.test", "/subscriptions/s/x", "KEY", username_claim="oid",
                                    username_prefix="aad:", groups_prefix="aadgroup:")
    cm = next(o for o in objs if o["kind"] == "ConfigMap")
    assert cm["data"]["usernameClaim"] == "oid" and cm["data"]["usernamePrefix"] == "aad:"
    assert cm["data"]["groupsPrefix"] == "aadgroup:"
    c = next(o for o in objs if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert ["--username-claim=$(CK_USERNAME_CLAIM)", "--username-prefix=$(CK_USERNAME_PREFIX)",
            "--groups-prefix=$(CK_GROUPS_PREFIX)"] == c["args"][-3:]
    assert {e["name"]: e["valueFrom"]["configMapKeyRef"]["key"] for e in c["env"]} == {
        "CK_USERNAME_CLAIM": "usernameClaim", "CK_USERNAME_PREFIX": "usernamePrefix", "CK_GROUPS_PREFIX": "groupsPrefix"}
