"""Users of `kv serve`: who may log in, which commands each may run, on which keys.

An ACL file (`kv serve --acl-file FILE`) has one user per line in Redis's syntax, a
subset of it; blank lines and lines starting with `#` are skipped:

    user default off
    user alice on >s3cret ~app:* +@read +set
    user ops on #<sha256 hex of the password> allkeys +@all -shutdown

The rules of a line apply from left to right, as in Redis:

- `on` / `off`: the user may log in or not (a new user is `off`);
- `>password` adds a password, `<password` removes it, `#hex` adds one by its
  SHA-256, `nopass` lets any password in, `resetpass` forgets them all;
- `~pattern` allows the keys matching a glob pattern (`kv.pattern`), `allkeys` is
  `~*`, `resetkeys` allows none;
- `+command` / `-command` allow or forbid one command, `+@category` / `-@category`
  every command of a category, `allcommands` is `+@all`, `nocommands` `-@all`;
  the categories are `all`, `read`, `write`, `admin`, `fast`, `slow`, `keyspace`,
  `connection`, `dangerous` and `transaction`;
- `reset` starts the user over (`off`, no password, no key, no command).

Unlike Redis, a file that does not name `default` leaves it `off`: with an ACL file
every client logs in unless the file says `user default on nopass ...`. `AUTH`,
`HELLO` and `QUIT` are always allowed (one cannot log in otherwise). A command whose
keys (`Command.first_key` .. `last_key`) do not all match one of the user's patterns
is refused. KEYS and SCAN name no key: a user allowed them lists every key.

`--requirepass PASSWORD` is the one-user case: `default` with that password and
everything allowed (`Acl.with_password`). Parsing is sans-I/O: the server reads the
file and hands its text to `parse_acl`, which raises `AclError` naming the line.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from kv.commands import COMMANDS, Command, Flag
from kv.errors import InvalidArgument
from kv.pattern import matcher
from kv.transaction import TRANSACTION_VERBS

# The connection's own commands (kv.session), which the command table does not hold.
CONNECTION_COMMANDS = frozenset({"auth", "hello", "client", "select", "config", "quit", "shutdown", "acl"})
TRANSACTION_COMMANDS = frozenset(verb.decode() for verb in TRANSACTION_VERBS)
ALWAYS_ALLOWED = frozenset({"auth", "hello", "quit"})
_DANGEROUS = frozenset({"shutdown", "config", "keys", "compact", "verify", "save", "acl", "info"})
_KEYSPACE = frozenset(
    {"del", "exists", "type", "keys", "scan", "dbsize", "expire", "pexpire", "expireat", "pexpireat"}
    | {"persist", "ttl", "pttl", "expiretime", "pexpiretime"}
)


class AclError(InvalidArgument):
    """An ACL file or rule that cannot be applied (the message names the line)."""


def _categories() -> dict[str, frozenset[str]]:
    table = {command.name: command.flags for command in COMMANDS}
    every = frozenset(table) | CONNECTION_COMMANDS | TRANSACTION_COMMANDS

    def having(flag: Flag) -> frozenset[str]:
        return frozenset(name for name, flags in table.items() if flag in flags)

    fast = having(Flag.FAST)
    return {
        "all": every,
        "read": having(Flag.READONLY),
        "write": having(Flag.WRITE),
        "admin": having(Flag.ADMIN) | {"shutdown", "config", "acl"},
        "fast": fast,
        "slow": every - fast,
        "keyspace": _KEYSPACE,
        "connection": frozenset({"auth", "hello", "client", "select", "quit", "ping", "echo"}),
        "dangerous": _DANGEROUS,
        "transaction": TRANSACTION_COMMANDS,
    }


CATEGORIES = _categories()


@dataclass
class User:
    """One user, as its rules left it."""

    name: str
    enabled: bool = False
    any_password: bool = False
    password_hashes: set[str] = field(default_factory=set)
    commands: set[str] = field(default_factory=set)
    key_patterns: list[bytes] = field(default_factory=list)
    _key_matchers: list[Callable[[bytes], bool]] = field(default_factory=list, repr=False)
    _unrestricted: bool = field(default=False, repr=False)

    def describe(self) -> str:
        """The user as one ACL file line (passwords by their SHA-256), for ACL LIST."""
        words = ["user", self.name, "on" if self.enabled else "off"]
        words += ["nopass"] if self.any_password else [f"#{digest}" for digest in sorted(self.password_hashes)]
        words += [f"~{pattern.decode('utf-8', 'replace')}" for pattern in self.key_patterns] or ["resetkeys"]
        if self.commands >= CATEGORIES["all"]:
            words.append("+@all")
        else:
            words += ["-@all"] + [f"+{name}" for name in sorted(self.commands)]
        return " ".join(words)

    def accepts(self, password: bytes) -> bool:
        if not self.enabled:
            return False
        if self.any_password:
            return True
        digest = hashlib.sha256(password).hexdigest()
        return any(hmac.compare_digest(digest, known) for known in self.password_hashes)

    @property
    def unrestricted(self) -> bool:
        """Every command on every key: nothing to check (the common case, kept cheap)."""
        return self._unrestricted

    def may_run(self, name: str) -> bool:
        return name in ALWAYS_ALLOWED or name in self.commands

    def may_touch(self, key: bytes) -> bool:
        return any(match(key) for match in self._key_matchers)

    def apply(self, rule: str) -> None:
        """Apply one rule (see the module docstring); `AclError` when it means nothing."""
        appliers = (_apply_flag, _apply_password, _apply_keys, _apply_commands)
        if not any(applier(self, rule) for applier in appliers):
            raise AclError(f"Error in applying operation '{rule}': Syntax error")
        self._unrestricted = self.commands >= CATEGORIES["all"] and b"*" in self.key_patterns


def _apply_flag(user: User, rule: str) -> bool:
    lowered = rule.lower()
    if lowered in ("on", "off"):
        user.enabled = lowered == "on"
    elif lowered == "reset":
        user.enabled = user.any_password = False
        user.password_hashes, user.commands = set(), set()
        user.key_patterns, user._key_matchers = [], []
    else:
        return False
    return True


def _apply_password(user: User, rule: str) -> bool:
    lowered = rule.lower()
    if lowered == "nopass":
        user.any_password, user.password_hashes = True, set()
    elif lowered == "resetpass":
        user.any_password, user.password_hashes = False, set()
    elif rule.startswith(">"):
        user.any_password = False
        user.password_hashes.add(hashlib.sha256(rule[1:].encode()).hexdigest())
    elif rule.startswith("<"):
        user.password_hashes.discard(hashlib.sha256(rule[1:].encode()).hexdigest())
    elif rule.startswith("#"):
        digest = rule[1:].lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise AclError(f"Error in applying operation '{rule}': The password hash must be 64 hex digits")
        user.any_password = False
        user.password_hashes.add(digest)
    else:
        return False
    return True


def _apply_keys(user: User, rule: str) -> bool:
    lowered = rule.lower()
    if lowered == "resetkeys":
        user.key_patterns, user._key_matchers = [], []
        return True
    if lowered == "allkeys":
        rule = "~*"
    if not rule.startswith("~"):
        return False
    pattern = rule[1:].encode()
    user.key_patterns.append(pattern)
    # `*` alone matches every key, the empty one too (as KEYS special-cases it).
    user._key_matchers.append((lambda _key: True) if pattern == b"*" else matcher(pattern))
    return True


def _apply_commands(user: User, rule: str) -> bool:
    lowered = rule.lower()
    lowered = {"allcommands": "+@all", "nocommands": "-@all"}.get(lowered, lowered)
    if lowered[:1] not in ("+", "-") or len(lowered) < 2:
        return False
    adding, target = lowered[0] == "+", lowered[1:]
    if target.startswith("@"):
        names = CATEGORIES.get(target[1:])
    else:
        names = frozenset({target}) if target in CATEGORIES["all"] else None
    if names is None:
        raise AclError(f"Error in applying operation '{rule}': Unknown command or category name in ACL")
    if adding:
        user.commands |= names
    else:
        user.commands -= names
    return True


@dataclass
class Acl:
    """Every user of a server, by name."""

    users: dict[str, User]

    @classmethod
    def open_to_all(cls) -> Acl:
        """No password, no ACL: every client is `default`, allowed everything."""
        return cls({"default": _default_user(["on", "nopass", "~*", "+@all"])})

    @classmethod
    def with_password(cls, password: str) -> Acl:
        """`--requirepass`: `default` with that password, allowed everything."""
        return cls({"default": _default_user(["on", f">{password}", "~*", "+@all"])})

    @property
    def open_default(self) -> User | None:
        """`default` when a client is logged in as it from the start (no password)."""
        user = self.users.get("default")
        return user if user is not None and user.enabled and user.any_password else None

    def authenticate(self, name: bytes, password: bytes) -> User | None:
        user = self.users.get(name.decode("utf-8", "replace"))
        return user if user is not None and user.accepts(password) else None


def _default_user(rules: Iterable[str]) -> User:
    user = User("default")
    for rule in rules:
        user.apply(rule)
    return user


def parse_acl(text: str, source: str = "ACL file") -> Acl:
    """The users of an ACL file's text; `AclError` naming the first bad line."""
    users: dict[str, User] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        try:
            if words[0] != "user" or len(words) < 2:
                raise AclError("a line must be: user NAME [rule ...]")
            if words[1] in users:
                raise AclError(f"user '{words[1]}' is defined twice")
            user = users[words[1]] = User(words[1])
            for rule in words[2:]:
                user.apply(rule)
        except AclError as failure:
            raise AclError(f"{source}:{number}: {failure}") from None
    return Acl(users)


NO_PERMISSION_KEYS = "this user has no permissions to access one of the keys used as arguments"


def refusal(user: User, command: Command | str, argv: Sequence[bytes]) -> str | None:
    """Why `user` may not run `argv` (Redis's NOPERM text), or None when it may.
    `command` is a table entry or the name of a connection command (`acl|whoami`)."""
    shown = command if isinstance(command, str) else command.name
    if not user.may_run(shown.split("|")[0]):
        return f"this user has no permissions to run the '{shown}' command"
    if isinstance(command, Command) and command.first_key > 0:
        for key in _keys(command, argv):
            if not user.may_touch(key):
                return NO_PERMISSION_KEYS
    return None


def _keys(command: Command, argv: Sequence[bytes]) -> Sequence[bytes]:
    last = command.last_key if command.last_key > 0 else len(argv) + command.last_key
    return argv[command.first_key : last + 1 : command.key_step or 1]
