"""The policy, without HTTP: names, types, sizes, folders and the fields it signs."""

import dataclasses

import pytest

from app.core import errors
from app.core.folders import caller_segment
from app.core.imagekit.filetypes import ALLOWED
from app.core.imagekit.rules import MIB, PlanLimits
from app.core.ledger.records import UploadGrant
from app.credential_service.policy import FileRequest, Policy, Profile, seed_profile

SEED_EXTENSIONS = (
    "jpg jpeg png webp gif svg heif heic bmp flif arw tif tiff pdf js mjs css php py yml yaml "
    "woff2 woff ttf otf eot ps txt mp4 webm mov swf ts m3u8 json xml rss html mp3 m4a wav doc "
    "ppt xls docx pptx xlsx eps eps3 indd ai bw psd rtf ept glb dxf 3ds obj stl fbx ply gltf "
    "djvu dng appimage"
).split()


def policy(plan: str = "free", **profile: object) -> Policy:
    base = seed_profile(PlanLimits.for_plan(plan), ttl=1800)
    if profile:
        base = dataclasses.replace(base, **profile)  # type: ignore[arg-type]
    return Policy({base.name: base}, base.name)


def grant(
    p: Policy,
    name: str = "cat.png",
    size: int = 1000,
    mime: str = "image/png",
    folder: str | None = None,
    caller: str = "session:alice",
) -> dict[str, str]:
    request = FileRequest(name, size, mime, folder)
    return dict(p.grant_file(p.profile(None), request, caller=caller).fields)


def test_default_profile_allows_exactly_the_seed_types_and_avif() -> None:
    """The built-in profile is the seed's allowed-types table and AVIF, no more, no less."""
    assert sorted(ALLOWED) == sorted([*SEED_EXTENSIONS, "avif"])
    assert policy().profile(None).types == frozenset([*SEED_EXTENSIONS, "avif"])


def test_fields_pin_name_folder_size_and_type() -> None:
    """The grant's fields are strings, and checks pin the declared size and canonical type."""
    fields = grant(policy(), "cat.png", 48213, "image/png")
    assert fields == {
        "fileName": "cat.png",
        "folder": "/",
        "useUniqueFileName": "true",
        "overwriteFile": "false",
        "checks": '"file.size" <= 48213 AND "file.mime" = "image/png"',
    }


def test_mime_aliases_are_pinned_to_the_canonical_type() -> None:
    """A browser's alias (audio/x-m4a) is accepted and pinned as the canonical audio/mp4."""
    fields = grant(policy(), "song.m4a", 10, "audio/x-m4a")
    assert fields["checks"].endswith('"file.mime" = "audio/mp4"')


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", errors.InvalidFileName),
        ("a" * 252 + ".png", errors.InvalidFileName),
        ("../cat.png", errors.InvalidFileName),
        ("dir/cat.png", errors.InvalidFileName),
        ("dir\\cat.png", errors.InvalidFileName),
        ("cat..png", errors.InvalidFileName),
        ("cat\x00.png", errors.InvalidFileName),
        ("cat\n.png", errors.InvalidFileName),
        ("gnp\u202e.png", errors.InvalidFileName),
        (" cat.png", errors.InvalidFileName),
        ("noextension", errors.InvalidFileName),
        (".png", errors.InvalidFileName),
        ("cat.exe", errors.TypeNotAllowed),
        ("cat.png.exe", errors.TypeNotAllowed),
    ],
)
def test_bad_file_names_are_refused(name: str, problem: type[errors.Problem]) -> None:
    """Separators, '..', control and bidi characters, no extension or a bad one: refused."""
    with pytest.raises(problem):
        grant(policy(), name)


def test_uppercase_and_unicode_names_are_fine() -> None:
    """Extensions match case-insensitively; non-ASCII letters are allowed."""
    assert grant(policy(), "Katze-ü.PNG")["fileName"] == "Katze-ü.PNG"
    assert grant(policy(), "scan.EPT", mime="application/postscript")["fileName"] == "scan.EPT"


def test_type_must_match_extension() -> None:
    """A .png declared as text/html is a mismatch, not a PNG."""
    with pytest.raises(errors.TypeMismatch):
        grant(policy(), "cat.png", mime="text/html")


def test_profile_types_restrict_the_seed_list() -> None:
    """A profile that allows only images refuses a PDF."""
    with pytest.raises(errors.TypeNotAllowed):
        grant(policy(types=frozenset({"png", "jpg"})), "doc.pdf", mime="application/pdf")


@pytest.mark.parametrize(
    ("plan", "name", "mime", "limit"),
    [
        ("free", "cat.png", "image/png", 25 * MIB),
        ("free", "clip.mp4", "video/mp4", 25 * MIB),
        ("paid", "cat.png", "image/png", 25 * MIB),
        ("paid", "clip.mp4", "video/mp4", 300 * MIB),
    ],
)
def test_plan_size_limits(plan: str, name: str, mime: str, limit: int) -> None:
    """25 MB on the free plan; 300 MB for video on the paid plan; one byte more is refused."""
    p = policy(plan)
    assert grant(p, name, limit, mime)["checks"].startswith(f'"file.size" <= {limit} ')
    with pytest.raises(errors.FileTooLarge):
        grant(p, name, limit + 1, mime)


def test_folder_template_uses_the_caller_identity() -> None:
    """The profile's folder template is filled with the caller's identity, namespace first."""
    p = policy(folder="/users/{caller}/avatars")
    assert grant(p, caller="session:alice")["folder"] == "/users/session-alice/avatars"
    assert grant(p, caller="key:alice")["folder"] == "/users/key-alice/avatars"


def test_requested_folder_must_stay_inside_the_template() -> None:
    """A subfolder is fine; a sibling or a parent is refused."""
    p = policy(folder="/users/{caller}")
    assert grant(p, folder="/users/session-alice/2026/")["folder"] == "/users/session-alice/2026"
    for outside in ("/users/session-bob", "/users", "/", "/users/session-alice-x", "/users/alice"):
        with pytest.raises(errors.InvalidFolder):
            grant(p, folder=outside)


@pytest.mark.parametrize("folder", ["/a b", "/a/../b", "/a.b", "/ü", "/" + "/a" * 51])
def test_folders_outside_imagekits_alphabet_are_refused(folder: str) -> None:
    """Only a-z A-Z 0-9 / _ -, at most 50 levels."""
    with pytest.raises(errors.InvalidFolder):
        grant(policy(), folder=folder)


def test_caller_segments_never_collide() -> None:
    """Ids outside the alphabet, or dressed up as hashed ones or as another namespace's, get
    distinct folder segments in every namespace."""
    ids = ["alice", "alice@example.com", "alice_example_com", "alice.example.com", "a/b", "a_b"]
    ids += [caller_segment("idp:alice@example.com").removeprefix("idp-"), "key-alice", "idp-x"]
    identities = [f"{namespace}:{i}" for namespace in ("key", "idp", "session") for i in ids]
    segments = [caller_segment(i) for i in identities]
    assert len(set(segments)) == len(identities)
    assert caller_segment("session:alice") == "session-alice"
    assert all(
        set(s) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
        for s in segments
    )


def test_profile_flags_become_fields() -> None:
    """Overwrite, privacy and tags come from the profile, as ImageKit strings."""
    fields = grant(
        policy(use_unique_file_name=False, overwrite=True, private=True, tags=("a", "b"))
    )
    assert fields["useUniqueFileName"] == "false"
    assert fields["overwriteFile"] == "true"
    assert fields["isPrivateFile"] == "true"
    assert fields["tags"] == "a,b"


class TestUploadPayload:
    """ImageKit's request shape: the payload is a wish list, never widened."""

    def test_payload_gets_the_profile_fields_and_checks(self) -> None:
        """A minimal payload comes back with folder, flags and type-pinning checks."""
        p = policy()
        fields = p.grant_payload(
            p.profile(None), {"fileName": "a.jpg", "tags": ["x", "y"]}, caller="c"
        ).fields
        assert fields["tags"] == "x,y"
        assert fields["checks"] == f'"file.size" <= {25 * MIB} AND "file.mime" = "image/jpeg"'

    @pytest.mark.parametrize(
        "payload",
        [
            {"fileName": "a.jpg", "checks": '"file.size" > 0'},
            {"fileName": "a.jpg", "overwriteFile": "true"},
            {"fileName": "a.jpg", "useUniqueFileName": "false"},
            {"fileName": "a.jpg", "webhookUrl": "http://evil"},
            {"fileName": "a.jpg", "extensions": "[]"},
            {"fileName": "a.jpg", "whatever": "x"},
            {"fileName": "a.jpg", "customMetadata": "not json"},
            {"fileName": "a.jpg", "tags": "a%20b"},
            {"fileName": "a.jpg", "folder": 3},
        ],
    )
    def test_payload_cannot_widen_the_policy(self, payload: dict[str, object]) -> None:
        """Client checks, overwrite flags, webhooks, unknown fields: refused."""
        p = policy()
        with pytest.raises(errors.FieldNotAllowed):
            p.grant_payload(p.profile(None), payload, caller="c")

    def test_overwrite_flags_pass_when_the_profile_allows(self) -> None:
        """A profile with overwrite allowed lets the client set the overwrite flags."""
        p = policy(overwrite=True)
        fields = p.grant_payload(
            p.profile(None), {"fileName": "a.jpg", "overwriteTags": "false"}, caller="c"
        ).fields
        assert fields["overwriteTags"] == "false"

    def test_payload_without_file_name_is_refused(self) -> None:
        """fileName is required."""
        p = policy()
        with pytest.raises(errors.InvalidFileName):
            p.grant_payload(p.profile(None), {"folder": "/"}, caller="c")


def test_unknown_profile() -> None:
    """A profile that does not exist is UnknownProfile."""
    with pytest.raises(errors.UnknownProfile):
        policy().profile("nope")


def test_v1_is_opt_in_per_profile() -> None:
    """A profile that has not opted in refuses v1 and names the setting that opts in."""
    closed = policy()
    with pytest.raises(errors.V1NotAllowed, match=r"allow_v1 = true in \[profiles.default\]"):
        closed.grant_v1(closed.profile(None), caller="alice")


def test_a_v1_grant_is_the_profile_for_this_caller() -> None:
    """The grant carries the rendered folder, the types, both size limits and the flags, and
    survives the trip through the ledger."""
    opened = policy(
        allow_v1=True,
        folder="/users/{caller}",
        types=frozenset({"png", "mp4"}),
        tags=("avatar",),
        overwrite=True,
    )
    profile = opened.profile(None)
    grant = opened.grant_v1(profile, caller="idp:al ice")
    assert grant.folder == "/users/" + caller_segment("idp:al ice")
    assert grant.caller == "idp:al ice"
    assert grant.types == ("mp4", "png")
    assert (grant.max_size, grant.max_video_size) == (25 * MIB, 25 * MIB)
    assert (grant.use_unique_file_name, grant.overwrite, grant.private) == (True, True, False)
    assert UploadGrant.from_json(grant.to_json()) == grant
    with pytest.raises(ValueError, match="not a grant"):
        UploadGrant.from_json(b'{"profile": "x"}')


def test_the_largest_size_counts_video_only_when_the_profile_has_video() -> None:
    """v1 charges the byte quota the most one upload may carry under the profile."""
    limits = PlanLimits(10 * MIB, 300 * MIB)
    images = Profile("i", frozenset({"png"}), limits)
    videos = Profile("v", frozenset({"png", "mp4"}), limits)
    assert (images.largest_size, videos.largest_size) == (10 * MIB, 300 * MIB)


def test_refusals_say_what_to_do() -> None:
    """Sizes in binary units with the file's own size; the refused extension named (when it is
    plain) and where the allowed list is; a profile's own list when it is short."""
    seed = policy()
    with pytest.raises(errors.FileTooLarge) as big:
        grant(seed, size=int(31.2 * MIB))
    assert big.value.detail == "31.2 MiB is over this profile's 25 MiB limit for image files"
    with pytest.raises(errors.TypeNotAllowed) as exe:
        grant(seed, name="tool.exe", mime="application/octet-stream")
    assert exe.value.detail is not None
    assert exe.value.detail.startswith("'.exe' is not an allowed upload type")
    assert "docs/api.md" in exe.value.detail
    with pytest.raises(errors.TypeNotAllowed) as odd:
        grant(seed, name="x.<b>", mime="text/html")
    assert odd.value.detail is not None
    assert "<b>" not in odd.value.detail
    narrow = policy(types=frozenset({"png", "webp"}))
    with pytest.raises(errors.TypeNotAllowed) as outside:
        grant(narrow, name="a.jpg", mime="image/jpeg")
    assert outside.value.detail == "this profile allows only these types: png, webp"
