"""The upload policy: what a caller may upload, and the exact form fields a credential signs.

Pure: no I/O, no framework imports. The client only asks; the policy decides the folder (from the
profile's template and the caller id), the allowed types and sizes, the name rules, the TTL and
the ``checks`` expression that pins a v2 credential to one file (its size and MIME type).
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from app.core import errors
from app.core.folders import render_folder
from app.core.imagekit import rules
from app.core.imagekit.filetypes import ALLOWED, UNTYPED, FileType, Kind
from app.core.imagekit.rules import PlanLimits, format_size, is_within, normalise_folder
from app.core.ledger.records import UploadGrant

_FOLDER_SEGMENT_RE: Final = re.compile(r"^[A-Za-z0-9_-]+$")
#: A refusal lists a profile's types when there are at most this many.
MAX_LISTED_TYPES: Final = 20
#: A type mismatch lists at most this many other accepted names of the type.
MAX_LISTED_OTHER_TYPES: Final = 8
#: ImageKit's rules, each broken rule as the problem the credential service answers with.
_PROBLEMS: Final[Mapping[type[rules.RuleError], type[errors.Problem]]] = {
    rules.BadFileName: errors.InvalidFileName,
    rules.UnknownType: errors.TypeNotAllowed,
    rules.BadFolder: errors.InvalidFolder,
    rules.BadTags: errors.FieldNotAllowed,
}


def as_problem(exc: rules.RuleError) -> errors.Problem:
    """A broken ImageKit rule as the credential service's problem."""
    return _PROBLEMS[type(exc)](str(exc))


@dataclass(frozen=True, slots=True)
class Profile:
    """A named set of upload rules. Sizes in bytes; ``folder`` may contain ``{caller}``."""

    name: str
    types: frozenset[str]
    limits: PlanLimits
    folder: str = "/"
    use_unique_file_name: bool = True
    overwrite: bool = False
    private: bool = False
    tags: tuple[str, ...] = ()
    ttl: int = 1800
    #: Whether v1 credentials may be issued for this profile (see ``Policy.grant_v1``).
    allow_v1: bool = False
    #: The folder (template) whose files callers may get signed delivery URLs for; None: the
    #: profile's ``folder``.
    read_folder: str | None = None
    #: The longest a signed delivery URL issued under this profile is valid, seconds.
    url_lifetime: int = 3600
    #: The most bytes one file may have under this profile (the video limit if it has video).
    largest_size: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        has_video = any(ALLOWED[t].kind is Kind.VIDEO for t in self.types)
        largest = max(self.limits.max_size, self.limits.max_video_size if has_video else 0)
        object.__setattr__(self, "largest_size", largest)

    def max_size_for(self, file_type: FileType) -> int:
        return self.limits.limit_for(file_type.kind)


@dataclass(frozen=True, slots=True)
class FileRequest:
    """What a client says it wants to upload (v2 native request)."""

    file_name: str
    file_size: int
    mime_type: str
    folder: str | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """What the policy allows: the exact form fields to sign and send, and the lifetime."""

    fields: Mapping[str, str]
    ttl: int
    #: The most bytes the credential lets through (what a byte quota is charged).
    max_size: int


# -- names and folders ------------------------------------------------------------------------


def _outside_profile(profile: "Profile") -> errors.TypeNotAllowed:
    if len(profile.types) <= MAX_LISTED_TYPES:
        allowed = ", ".join(sorted(profile.types))
        return errors.TypeNotAllowed(f"this profile allows only these types: {allowed}")
    return errors.TypeNotAllowed("this profile does not allow this file type (see its types)")


def _mismatch(file_type: FileType) -> errors.TypeMismatch:
    """The refusal of a declared type, naming the types that would be accepted (never the
    one sent)."""
    others = sorted(file_type.accepted() - UNTYPED - {file_type.mime})
    listed = ", ".join(others[:MAX_LISTED_OTHER_TYPES])
    return errors.TypeMismatch(
        f"mimeType does not match the fileName's extension '.{file_type.extension}': declare "
        f"{file_type.mime}"
        + (f" (or {listed})" if listed else "")
        + ", or no type (empty or application/octet-stream)"
    )


def _too_large(size: int, limit: int, file_type: FileType) -> errors.FileTooLarge:
    return errors.FileTooLarge(
        f"{format_size(size)} is over this profile's {format_size(limit)} limit "
        f"for {file_type.kind.value} files"
    )


def choose_folder(base: str, requested: str | None) -> str:
    """The requested folder if it lies within ``base``, else ``base`` itself when none asked."""
    if requested is None:
        return base
    folder = normalise_folder(requested)
    if is_within(folder, base):
        return folder
    raise rules.BadFolder(f"folder {folder} is outside this profile's folder {base}")


# -- the decision -----------------------------------------------------------------------------


def _bool(value: bool) -> str:
    return "true" if value else "false"


def checks_for(max_size: int, mime: str) -> str:
    """The ``checks`` expression pinning a file's size (at most ``max_size``) and MIME type."""
    return f'"file.size" <= {max_size} AND "file.mime" = "{mime}"'


class Policy:
    """The configured profiles and how to turn a request into a grant."""

    __slots__ = ("_by_name", "default_profile", "profiles")

    def __init__(self, profiles: Mapping[str, Profile], default_profile: str) -> None:
        if default_profile not in profiles:
            raise ValueError("the default profile is not defined")
        self._by_name = dict(profiles)  # looked up on every request: a dict is the fastest
        self.profiles = MappingProxyType(self._by_name)
        self.default_profile = default_profile

    def profile(self, name: str | None) -> Profile:
        profile = self._by_name.get(name or self.default_profile)
        if profile is None:
            raise errors.UnknownProfile()
        return profile

    def _base_fields(self, profile: Profile, file_name: str, folder: str) -> dict[str, str]:
        fields = {
            "fileName": file_name,
            "folder": folder,
            "useUniqueFileName": _bool(profile.use_unique_file_name),
            "overwriteFile": _bool(profile.overwrite),
        }
        if profile.private:
            fields["isPrivateFile"] = "true"
        if profile.tags:
            fields["tags"] = ",".join(profile.tags)
        return fields

    def grant_file(self, profile: Profile, request: FileRequest, *, caller: str) -> Grant:
        """Decide a v2 request that declares the file's name, size and type."""
        try:
            return self._grant_file(profile, request, caller)
        except rules.RuleError as exc:
            raise as_problem(exc) from None

    def _grant_file(self, profile: Profile, request: FileRequest, caller: str) -> Grant:
        file_type = rules.check_file_name(request.file_name)
        if file_type.extension not in profile.types:
            raise _outside_profile(profile)
        if not file_type.accepts(request.mime_type):
            raise _mismatch(file_type)
        limit = profile.max_size_for(file_type)
        if request.file_size > limit:
            raise _too_large(request.file_size, limit, file_type)
        folder = choose_folder(render_folder(profile.folder, caller), request.folder)
        fields = self._base_fields(profile, request.file_name, folder)
        fields["checks"] = checks_for(request.file_size, file_type.mime)
        return Grant(fields, profile.ttl, request.file_size)

    @staticmethod
    def v1_not_allowed(profile: Profile) -> errors.V1NotAllowed:
        """The refusal for a profile that has not opted in to v1, naming the setting."""
        return errors.V1NotAllowed(
            f"profile {profile.name!r} does not issue v1 credentials: a v1 signature covers "
            "only token and expire, so on ImageKit whoever holds one may upload any allowed "
            "file anywhere in the account until it expires. Use v2 (POST /v2/token), or opt "
            f"in with allow_v1 = true in [profiles.{profile.name}]"
        )

    def grant_v1(self, profile: Profile, *, caller: str) -> UploadGrant:
        """What a v1 credential for this profile permits (the profile must allow v1). Built
        only when a grant is recorded, next to a ledger write: not worth keeping."""
        if not profile.allow_v1:
            raise self.v1_not_allowed(profile)
        try:
            folder = render_folder(profile.folder, caller)
        except rules.RuleError as exc:
            raise as_problem(exc) from None
        return UploadGrant(
            profile=profile.name,
            caller=caller,
            folder=folder,
            types=tuple(sorted(profile.types)),
            max_size=profile.limits.max_size,
            max_video_size=profile.limits.max_video_size,
            use_unique_file_name=profile.use_unique_file_name,
            overwrite=profile.overwrite,
            private=profile.private,
            tags=profile.tags,
        )

    def readable(self, profile: Profile, path: str, *, caller: str) -> str:
        """``path`` in canonical form, if the caller may have a signed delivery URL for it
        under this profile: a file within the profile's read folder (by default the profile's
        own folder, ``{caller}`` rendered). InvalidFileName/InvalidFolder, or Forbidden."""
        folder_part, _, name = path.rpartition("/")
        try:
            rules.check_file_name(name)
            folder = normalise_folder(folder_part)
            base = render_folder(profile.read_folder or profile.folder, caller)
        except rules.RuleError as exc:
            raise as_problem(exc) from None
        if not is_within(folder, base):
            raise errors.Forbidden(f"this caller may read only files within {base}")
        return f"{folder.rstrip('/')}/{name}"

    def grant_payload(
        self, profile: Profile, payload: Mapping[str, object], *, caller: str
    ) -> Grant:
        """Decide ImageKit's documented request shape (``uploadPayload``), never widening it.

        The client's payload may name the file, a folder within the profile's, tags and a few
        descriptive fields; the profile's own fields and the ``checks`` are always added. The
        answer's ``fields`` are what the client must send.
        """
        try:
            return self._grant_payload(profile, payload, caller)
        except rules.RuleError as exc:
            raise as_problem(exc) from None

    def _grant_payload(self, profile: Profile, payload: Mapping[str, object], caller: str) -> Grant:
        values = _string_values(payload)
        for name in values:
            if name not in _CLIENT_FIELDS and not (profile.overwrite and name in _OVERWRITE):
                raise errors.FieldNotAllowed(_field_problem(name))
        file_name = values.get("fileName")
        if file_name is None:
            raise errors.InvalidFileName("uploadPayload.fileName is required")
        file_type = rules.check_file_name(file_name)
        if file_type.extension not in profile.types:
            raise _outside_profile(profile)
        folder = choose_folder(render_folder(profile.folder, caller), values.get("folder"))
        fields = self._base_fields(profile, file_name, folder)
        for name in ("useUniqueFileName", "isPrivateFile"):
            if name in values and values[name] != fields.get(name, "false"):
                raise errors.FieldNotAllowed(f"{name} is fixed by the profile")
        if "tags" in values:
            fields["tags"] = _merge_tags(profile.tags, values["tags"])
        for name in (
            "description",
            "customCoordinates",
            "customMetadata",
            "responseFields",
            *_OVERWRITE,
        ):
            if name in values:
                fields[name] = values[name]
        if "customMetadata" in fields:
            _check_json_object(fields["customMetadata"])
        limit = profile.max_size_for(file_type)
        fields["checks"] = checks_for(limit, file_type.mime)
        return Grant(fields, profile.ttl, limit)


#: uploadPayload fields a client may set; everything else is the profile's to decide.
_CLIENT_FIELDS: Final = frozenset(
    {
        "fileName",
        "folder",
        "tags",
        "useUniqueFileName",
        "isPrivateFile",
        "description",
        "customCoordinates",
        "customMetadata",
        "responseFields",
    }
)
_OVERWRITE: Final = ("overwriteFile", "overwriteAITags", "overwriteTags", "overwriteCustomMetadata")
#: ImageKit's form fields, named in problems; any other name is not repeated back.
_KNOWN_FIELDS: Final = (
    _CLIENT_FIELDS
    | frozenset(_OVERWRITE)
    | frozenset(
        {
            "checks",
            "extensions",
            "webhookUrl",
            "transformation",
            "isPublished",
            "publicKey",
            "signature",
            "expire",
            "token",
            "file",
        }
    )
)


def _field_problem(name: str) -> str:
    if name in _KNOWN_FIELDS:
        return f"uploadPayload.{name} may not be set by the client under this profile"
    return "uploadPayload contains a field that is not an upload parameter"


def _string_values(payload: Mapping[str, object]) -> dict[str, str]:
    """ImageKit payload values travel as strings; booleans and lists are stringified as SDKs do."""
    values: dict[str, str] = {}
    for name, value in payload.items():
        if isinstance(value, bool):
            values[name] = _bool(value)
        elif isinstance(value, str):
            values[name] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            values[name] = ",".join(value)
        else:
            raise errors.FieldNotAllowed(
                "uploadPayload values must be strings, booleans or "
                "lists of strings (stringify JSON fields)"
            )
    return values


def _merge_tags(fixed: tuple[str, ...], requested: str) -> str:
    tags = list(fixed)
    for tag in (t.strip() for t in requested.split(",")):
        if tag and tag not in tags:
            tags.append(tag)
    return rules.check_tags(",".join(tags))


def _check_json_object(value: str) -> None:
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        raise errors.FieldNotAllowed("customMetadata must be a JSON object, stringified")


def seed_profile(limits: PlanLimits, ttl: int, *, allow_v1: bool = False) -> Profile:
    """The built-in profile: everything the seed's upload API accepts, at the plan's limits."""
    return Profile(
        name="default", types=frozenset(ALLOWED), limits=limits, ttl=ttl, allow_v1=allow_v1
    )
