"""The repo ids a push creates, checked at the door with the Hub's own rules.

A push of ``org/name`` creates ``org/name-dn1`` .. ``org/name-dn{N+1}`` (and ``org/name`` itself, the family
repo). Every one of them is checked with :func:`huggingface_hub.utils.validate_repo_id` before anything is staged
or sent, so an id the Hub would refuse (a trailing newline, ``--`` or ``..``, a name over 96 characters once
``-dn{N+1}`` is added) stops the command in one line instead of failing half-way through the push.
"""

from __future__ import annotations

import re

from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..cards import dn_repo
from ..errors import SettingError

#: the longest repo name the Hub takes (the part after ``org/``), as huggingface_hub's validate_repo_id checks it
MAX_NAME_LENGTH = 96
_ALLOWED = re.compile(r"[A-Za-z0-9_.-]+")


def push_repo_ids(repo_prefix: str, num_levels: int, *, include_family: bool = True) -> list[str]:
    """The repos a push of ``num_levels`` levels creates: the family repo (with ``include_family``), then every
    level's."""
    return ([repo_prefix] if include_family else []) + [dn_repo(repo_prefix, k) for k in range(1, num_levels + 1)]


def _broken_rule(repo_id: str) -> str:
    """Which of the Hub's rules ``repo_id`` breaks, in words (validate_repo_id's own message repeats the id
    unquoted, so a newline in it would split the one-line error)."""
    namespace, _, name = repo_id.partition("/")
    for what, part in (("namespace", namespace), ("name", name)):
        if len(part) > MAX_NAME_LENGTH:
            return f"its {what} is {len(part)} characters long, the Hub allows at most {MAX_NAME_LENGTH}"
    for part in (namespace, name):
        if not part:
            return "both the namespace and the name must be non-empty"
        if not _ALLOWED.fullmatch(part):
            bad = sorted({c for c in part if not _ALLOWED.fullmatch(c)})
            return f"only letters, digits, '-', '_' and '.' are allowed (found {''.join(bad)!r})"
        if part[0] in "-." or part[-1] in "-.":
            return f"{part!r} must not start or end with '-' or '.'"
    if "--" in repo_id or ".." in repo_id:
        return "'--' and '..' are not allowed"
    if repo_id.endswith(".git"):
        return "it must not end with '.git'"
    return "the Hub refuses it"


def check_repo_prefix(repo_prefix: object, num_levels: int, *, include_family: bool = True,
                      option: str = "--repo_prefix") -> list[str]:
    """Check every repo id a push of ``repo_prefix`` creates against the Hub's rules.

    Args:
        repo_prefix (`str`): ``org/name``; the levels go to ``{repo_prefix}-dn{k}``.
        num_levels (`int`): N+1, the level count (the longest id is ``{repo_prefix}-dn{N+1}``); 0 checks
            ``repo_prefix`` alone.
        include_family (`bool`, *optional*, defaults to `True`): the family repo ``{repo_prefix}`` is created
            too.
        option (`str`, *optional*, defaults to `"--repo_prefix"`): the name the error gives the input.

    Returns:
        `list[str]`: the repo ids (:func:`push_repo_ids`).

    Raises:
        SettingError: ``repo_prefix`` is not ``org/name`` (the collection that groups the repos lives in the
            namespace ``org``), or one of the ids breaks a rule of the Hub (one line naming the id and the rule).
    """
    if not isinstance(repo_prefix, str) or repo_prefix.count("/") != 1:
        raise SettingError(f"{option} must be 'org/name' (a namespace, then the name; the levels become "
                           f"org/name-dn1 .. org/name-dn{{N+1}}), got {repo_prefix!r}")
    ids = push_repo_ids(repo_prefix, num_levels, include_family=include_family)
    # the last level first: a name that fits alone but not with '-dn{N+1}' is named as the longest repo it makes
    for repo_id in reversed(ids):
        try:
            validate_repo_id(repo_id)
        except HFValidationError:
            raise SettingError(f"{option} {repo_prefix!r}: the repo id {repo_id!r} is not valid on the Hub: "
                               f"{_broken_rule(repo_id)}") from None
    return ids
