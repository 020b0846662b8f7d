"""v1 credentials under the policy: the attacks that escaped it, each refused, in one process
(the service and the upload API sharing a ledger in memory) and across processes (the service
and two upload-API replicas sharing one Redis; credentials from the service, uploads to the
replica that did not see them issued)."""

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from app.credential_service.callers.api_keys import hash_api_key, new_api_key
from app.dev import serve_both
from tests.support.apps import asgi_client, new_private_key, new_public_key
from tests.support.idp import AUDIENCE, ISSUER
from tests.support.samples import png, v1_signature
from tests.support.servers import clean_env, redis_server, running
from tests.support.upstreams import SigningKey, Upstream, make_key, upstream_server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

MIB = 1024 * 1024
#: Spent by the `spender` caller in the quota case; the others stay well within it.
QUOTA = "100mb/hour"


@dataclass
class World:
    """Callers with their credentials, and where to send uploads."""

    http: httpx.AsyncClient
    service: str
    upload_api: str
    seed_api: str
    storage: Path
    public_key: str
    private_key: str
    keys: dict[str, str]
    idp: SigningKey

    def caller(self, name: str) -> dict[str, str]:
        """The Authorization header of an API-key caller, or of an identity-provider user."""
        if name in self.keys:
            return {"Authorization": f"Bearer {self.keys[name]}"}
        token = self.idp.sign({"sub": name, "iss": ISSUER, "aud": AUDIENCE, "iat": 1, "exp": 2**40})
        return {"Authorization": f"Bearer {token}"}

    async def v1(self, caller: str, profile: str | None = None) -> httpx.Response:
        params = {"profile": profile} if profile else {}
        return await self.http.get(
            self.service + "/v1/auth", headers=self.caller(caller), params=params
        )

    async def upload(self, caller: str, name: str, data: bytes, **fields: str) -> httpx.Response:
        """A v1 upload with a fresh credential of ``caller``, the client choosing ``fields``."""
        answer = await self.v1(caller)
        assert answer.status_code == 200, answer.text
        form = self.form(answer.json(), fileName=name, **fields)
        return await self.http.post(
            self.upload_api + "/api/v1/files/upload", data=form, files={"file": (name, data)}
        )

    @staticmethod
    def form(cred: dict[str, Any], **fields: str) -> dict[str, str]:
        """A v1 credential's answer as the upload's form fields, with ``fields``."""
        return {
            "publicKey": cred["publicKey"],
            "signature": cred["signature"],
            "expire": str(cred["expire"]),
            "token": cred["token"],
            **fields,
        }

    def stored(self, file_path: str) -> bytes | None:
        path = self.storage / "files" / file_path.lstrip("/")
        return path.read_bytes() if path.is_file() else None


def config(upstream: Upstream, keys: dict[str, str]) -> dict[str, Any]:
    """Two back ends with one profile each, end users of an identity provider, a byte quota."""
    return {
        "callers": {
            "api_keys": [
                {"name": "shop", "hash": hash_api_key(keys["shop"]), "profiles": ["products"]},
                {"name": "other", "hash": hash_api_key(keys["other"]), "profiles": ["avatar"]},
                *(
                    {"name": name, "hash": hash_api_key(keys[name]), "profiles": ["avatar"]}
                    for name in ("spender", "spender-v1")
                ),
                {"name": "v2only", "hash": hash_api_key(keys["v2only"]), "profiles": ["strict"]},
            ],
            "idp": {
                "jwks_url": upstream.url + "/jwks.json",
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "profiles": ["avatar"],
            },
        },
        "profiles": {
            "products": {
                "types": ["jpg", "png", "webp"],
                "max_size": "10mb",
                "folder": "/products",
                "allow_v1": True,
            },
            "avatar": {
                "types": ["jpg", "png", "webp"],
                "max_size": "5mb",
                "folder": "/users/{caller}/avatar",
                "allow_v1": True,
            },
            "strict": {"types": ["png"], "folder": "/strict"},
        },
        "default_profile": "avatar",
        "quota_v2": QUOTA,
        "rate_limit_v1": "off",
        "rate_limit_v2": "off",
    }


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def idp() -> Iterator[tuple[Upstream, SigningKey]]:
    key = make_key("kid-grants", "ES256")
    with upstream_server() as upstream:
        upstream.publish(key)
        yield upstream, key


def api_keys() -> dict[str, str]:
    return {name: new_api_key() for name in ("shop", "other", "spender", "spender-v1", "v2only")}


@asynccontextmanager
async def one_process(tmp_path: Path, idp: tuple[Upstream, SigningKey]) -> AsyncIterator[World]:
    """The service and the upload API in one process, production mode, no Redis."""
    upstream, key = idp
    keys = api_keys()
    public, private = new_public_key(), new_private_key()
    settings = Settings(
        public_key=public,
        private_key=private,
        storage_dir=tmp_path / "store",
        upload_api_url="http://test",
        **config(upstream, keys),
    )
    async with asgi_client(serve_both(settings), "http://test") as http:
        yield World(http, "", "", "", tmp_path / "store", public, private, keys, key)


@asynccontextmanager
async def replicas(tmp_path: Path, idp: tuple[Upstream, SigningKey]) -> AsyncIterator[World]:
    """The service and two upload-API replicas as processes, sharing one redis-server."""
    upstream, key = idp
    keys = api_keys()
    public, private = new_public_key(), new_private_key()
    settings = config(upstream, keys)
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(tmp_path / "redis.log"))
        env = clean_env(
            IMAGEKIT_PUBLIC_KEY=public,
            IMAGEKIT_PRIVATE_KEY=private,
            UPLOAD_AUTH_REDIS_URL=redis_url,
            UPLOAD_AUTH_STORAGE_DIR=str(tmp_path / "store"),
            UPLOAD_AUTH_CALLERS=json.dumps(settings.pop("callers")),
            UPLOAD_AUTH_PROFILES=json.dumps(settings.pop("profiles")),
            **{f"UPLOAD_AUTH_{name.upper()}": str(value) for name, value in settings.items()},
        )
        one = stack.enter_context(
            running(["upload-api"], env=env, log=tmp_path / "a.log", ready="/readyz")
        )
        two = stack.enter_context(
            running(["upload-api"], env=env, log=tmp_path / "b.log", ready="/readyz")
        )
        service = stack.enter_context(
            running(
                ["serve"],
                env={**env, "UPLOAD_AUTH_UPLOAD_API_URL": one.url},
                log=tmp_path / "service.log",
            )
        )
        async with httpx.AsyncClient(timeout=30) as http:
            yield World(
                http, service.url, two.url, one.url, tmp_path / "store", public, private, keys, key
            )


@pytest.fixture(scope="module", params=["one process", "two replicas and Redis"])
async def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    idp: tuple[Upstream, SigningKey],
) -> AsyncIterator[World]:
    """One world per module and setting: each test uses callers, names and folders of its own."""
    setup = one_process if request.param == "one process" else replicas
    async with setup(tmp_path_factory.mktemp("grants"), idp) as made:
        yield made


async def seed_product(world: World) -> bytes:
    """The shop's product image, stored by the account owner (Basic auth: unrestricted)."""
    data = png(3, 3)
    response = await world.http.post(
        world.seed_api + "/api/v1/files/upload",
        auth=(world.private_key, ""),
        data={"fileName": "sku-1.png", "folder": "/products", "useUniqueFileName": "false"},
        files={"file": ("sku-1.png", data)},
    )
    assert response.status_code == 200, response.text
    return data


def refused(response: httpx.Response, *words: str) -> str:
    assert response.status_code == 400, response.text
    message: str = response.json()["message"]
    assert all(word in message for word in words), message
    return message


async def test_a_caller_cannot_overwrite_another_callers_file(world: World) -> None:
    """`other` (avatar profile) cannot overwrite /products/sku-1.png, whichever flags it sends."""
    original = await seed_product(world)
    for flags in (
        {"useUniqueFileName": "false"},
        {"useUniqueFileName": "false", "overwriteFile": "true"},
    ):
        response = await world.upload("other", "sku-1.png", png(4, 4), folder="/products", **flags)
        assert response.status_code == 400, response.text
    assert world.stored("/products/sku-1.png") == original


async def test_a_caller_cannot_store_html_in_another_folder(world: World) -> None:
    """A script-bearing page is refused, outside the grant's folder and outside its types."""
    page = b"<html><script>alert(1)</script></html>"
    refused(
        await world.upload("other", "page.html", page, folder="/products"),
        "/users/key-other/avatar",
    )
    refused(await world.upload("other", "page.html", page), "allows only: jpg, png, webp")
    assert not list((world.storage / "files").rglob("page*.html"))


async def test_the_profiles_size_limit_holds(world: World) -> None:
    """An 8 MiB PNG is refused in the caller's own 5 MB avatar folder, in human units."""
    big = png(2, 2) + b"\0" * (8 * MIB)
    message = refused(await world.upload("other", "big.png", big), "5 MiB", "8.0 MiB")
    assert "The file size exceeds limits." in message


async def test_callers_stay_in_their_own_folders(world: World) -> None:
    """An API-key caller cannot write into another caller's folder, nor an end user into
    another user's; in their own folder (the default when none is sent) both succeed."""
    refused(
        await world.upload("other", "me.png", png(), folder="/users/key-shop/avatar"),
        "only into /users/key-other/avatar",
    )
    refused(
        await world.upload("alice", "me.png", png(), folder="/users/idp-bob/avatar"),
        "only into /users/idp-alice/avatar",
    )
    own = await world.upload("alice", "me.png", png(5, 5))
    assert own.status_code == 200, own.text
    assert own.json()["filePath"].startswith("/users/idp-alice/avatar/me_")
    deeper = await world.upload("other", "me.png", png(), folder="/users/key-other/avatar/2026")
    assert deeper.status_code == 200, deeper.text


async def test_profile_flags_cannot_be_widened(world: World) -> None:
    """The avatar profile wants unique names and no overwrites: a v1 upload cannot turn either
    off, and a narrower choice (a private file) is fine."""
    refused(
        await world.upload("other", "me.png", png(), useUniqueFileName="false"),
        "useUniqueFileName",
        "requires unique file names",
    )
    refused(
        await world.upload("other", "me.png", png(), overwriteFile="true"),
        "may not overwrite",
    )
    private = await world.upload("other", "me.png", png(), isPrivateFile="true")
    assert private.status_code == 200, private.text


async def test_profiles_outside_the_callers_list_and_v2_only_profiles_are_403(
    world: World,
) -> None:
    """The caller's profile list applies to v1 as to v2; a profile that has not opted in to
    v1 says why and which setting opts in."""
    outside = await world.v1("other", profile="products")
    assert outside.status_code == 403
    assert outside.json()["type"] == "/problems/forbidden"
    strict = await world.v1("v2only", profile="strict")
    assert strict.status_code == 403
    body = strict.json()
    assert body["type"] == "/problems/v1-not-allowed"
    assert "allow_v1 = true" in body["detail"]
    assert "[profiles.strict]" in body["detail"]


async def test_a_spent_byte_quota_refuses_v1_too(world: World) -> None:
    """Once v2 credentials have used the caller's bytes, /v1/auth answers 429 as well; v1
    credentials charge the profile's largest size."""
    file = {"fileName": "a.png", "fileSize": 5 * MIB, "mimeType": "image/png"}
    auth = world.caller("spender")
    statuses = [
        (await world.http.post(world.service + "/v2/token", json=file, headers=auth)).status_code
        for _ in range(21)
    ]
    assert statuses == [200] * 20 + [429]
    limited = await world.v1("spender")
    assert limited.status_code == 429
    assert limited.json()["type"] == "/problems/rate-limited"
    assert "retry-after" in limited.headers


async def test_v1_charges_the_profiles_largest_size(world: World) -> None:
    """Twenty v1 credentials of a 5 MB profile spend a 100 MB quota."""
    statuses = [(await world.v1("spender-v1")).status_code for _ in range(21)]
    assert statuses == [200] * 20 + [429]


async def test_a_v1_signature_made_elsewhere_is_refused(world: World) -> None:
    """A v1 signature made with the private key but not issued by upload-auth has no grant:
    refused in production, naming the setting that would accept it; sent again (a client's
    retry), refused the same way, not as a token used before."""
    token, expire = "made-elsewhere", int(time.time()) + 1800
    for _ in range(2):
        response = await world.http.post(
            world.upload_api + "/api/v1/files/upload",
            data={
                "fileName": "x.png",
                "publicKey": world.public_key,
                "token": token,
                "expire": str(expire),
                "signature": v1_signature(world.private_key.encode(), token, expire),
            },
            files={"file": ("x.png", png())},
        )
        assert response.status_code == 403, response.text
        assert "UPLOAD_AUTH_ACCEPT_UNBOUND_V1" in response.json()["message"]


async def test_the_account_owner_is_unrestricted(world: World) -> None:
    """Server-side uploads with the private key (Basic auth) are not bound by any profile."""
    response = await world.http.post(
        world.upload_api + "/api/v1/files/upload",
        auth=(world.private_key, ""),
        data={"fileName": "notes.txt", "folder": "/anywhere/at/all"},
        files={"file": ("notes.txt", b"hello")},
    )
    assert response.status_code == 200, response.text


async def test_a_provider_user_named_like_a_back_end_is_another_caller(world: World) -> None:
    """The identity provider's user `other` is not the API key `other`: its uploads land in a
    folder of its own, and it cannot write into the key's folder (#27: one identity per caller,
    whatever the login method)."""
    refused(
        await world.upload("other", "me.png", png(), folder="/users/idp-other/avatar"),
        "only into /users/key-other/avatar",
    )
    token = world.idp.sign({"sub": "other", "iss": ISSUER, "aud": AUDIENCE, "iat": 1, "exp": 2**40})
    as_user = await world.http.get(
        world.service + "/v1/auth", headers={"Authorization": f"Bearer {token}"}
    )
    form = World.form(as_user.json(), fileName="me.png", folder="/users/key-other/avatar")
    response = await world.http.post(
        world.upload_api + "/api/v1/files/upload", data=form, files={"file": ("me.png", png())}
    )
    refused(response, "only into /users/idp-other/avatar")


async def test_a_malformed_field_leaves_the_credential_good_on_any_replica(
    world: World,
) -> None:
    """customMetadata nested 500 deep is refused by one replica before the credential is
    burned: the same credential, with the field corrected, uploads on the other (#27)."""
    form = World.form((await world.v1("other")).json(), fileName="me.png")
    deep = json.dumps({"a": json.loads("[" * 500 + "]" * 500)})
    bad = await world.http.post(
        world.upload_api + "/api/v1/files/upload",
        data={**form, "customMetadata": deep},
        files={"file": ("me.png", png())},
    )
    refused(bad, "invalid customMetadata parameter")
    good = await world.http.post(
        world.seed_api + "/api/v1/files/upload", data=form, files={"file": ("me.png", png())}
    )
    assert good.status_code == 200, good.text
    assert good.json()["filePath"].startswith("/users/key-other/avatar/")
