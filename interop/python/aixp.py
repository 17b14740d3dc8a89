"""AIXP/1 in Python: agent ids, RFC 8785 canonical JSON, Ed25519 signatures, envelopes.

An independent implementation of the wire format described in docs/protocol.md, written
from the document (not from the Rust code), for the interoperability test. Only the
standard library and PyNaCl (libsodium) are used; the JSON Canonicalization Scheme is
implemented here rather than taken from a package, so the vectors test it.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import time
import uuid
from typing import Any

import nacl.exceptions
import nacl.signing

VERSION = "1.0"
SIGNED_KINDS = frozenset({"propose", "accept", "inform", "failure", "cancel"})
NON_TASK_KINDS = frozenset({"heartbeat", "error"})
MAX_TTL_MS = 10 * 60 * 1000
MAX_HOPS_CAP = 16
AGENT_ID_LEN = 52
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Status codes used here (the full table is in docs/protocol.md).
EXPIRED = 5012
TTL_TOO_LONG = 5013
SCHEMA_INVALID = 5014
MALFORMED = 5015
SIGNATURE_MISSING = 5016
SIGNATURE_INVALID = 5017
FORBIDDEN = 5007
HOP_LIMIT = 5011
INCOMPATIBLE = 5006


class Refused(Exception):
    """A message refused with an AIXP status code."""

    def __init__(self, code: int, reason: str):
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


# --- Encodings -------------------------------------------------------------------------

_B32HEX = re.compile(r"^[0-9a-v]*$")


def b32hex_encode(data: bytes) -> str:
    """Lower-case base32hex (RFC 4648 §7) without padding."""
    return base64.b32hexencode(data).decode("ascii").rstrip("=").lower()


def b32hex_decode(text: str, length: int) -> bytes:
    """Strict decoding: lower case only, no padding, unused trailing bits zero."""
    if not _B32HEX.match(text):
        raise ValueError(f"not lower-case base32hex: {text[:80]!r}")
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        data = base64.b32hexdecode(padded)
    except Exception as e:  # binascii.Error
        raise ValueError(f"not base32hex: {text[:80]!r}") from e
    if len(data) != length or b32hex_encode(data) != text:
        raise ValueError(f"not {length} bytes in canonical base32hex: {text[:80]!r}")
    return data


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_decode(text: str, length: int) -> bytes:
    """Strict base64url without padding: alphabet, length and zero trailing bits."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url without padding")
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except Exception as e:  # binascii.Error
        raise ValueError("not base64url") from e
    if len(data) != length or b64url_encode(data) != text:
        raise ValueError(f"not {length} bytes in canonical base64url")
    return data


def agent_id(public_key: bytes) -> str:
    """The agent id of an Ed25519 public key: 52 characters of base32hex."""
    if len(public_key) != 32:
        raise ValueError("a public key is 32 bytes")
    return b32hex_encode(public_key)


def public_key(agent: str) -> bytes:
    """The public key an agent id names."""
    if not isinstance(agent, str) or len(agent) != AGENT_ID_LEN:
        raise ValueError(f"not an agent id: {str(agent)[:80]!r}")
    return b32hex_decode(agent, 32)


def new_nonce() -> str:
    """16 fresh random bytes, base32hex (26 characters)."""
    return b32hex_encode(os.urandom(16))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def uuid7(unix_ms: int | None = None) -> str:
    """A version-7 UUID (RFC 9562): 48 bits of unix ms, then random bits."""
    ms = now_ms() if unix_ms is None else unix_ms
    value = (ms & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant 10
    return str(uuid.UUID(int=value))


# --- RFC 8785: the JSON Canonicalization Scheme ------------------------------------------


def es_number(x: float) -> str:
    """A double in ECMAScript's Number.prototype.toString form (RFC 8785 §3.2.2.3)."""
    if math.isnan(x) or math.isinf(x):
        raise ValueError("NaN and infinities have no JSON form")
    if x == 0:
        return "0"  # also -0
    sign = "-" if x < 0 else ""
    # repr gives the shortest digits that round-trip, closest to the value on ties: the
    # same digits ECMAScript chooses.
    mantissa, _, exp = repr(abs(x)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    # value = 0.DIGITS × 10^n: ECMAScript's digits s (k of them) and exponent n.
    all_digits = int_part + frac_part
    digits = all_digits.lstrip("0")
    n = len(int_part) + (int(exp) if exp else 0) - (len(all_digits) - len(digits))
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        exponent = ("+" if e >= 0 else "-") + str(abs(e))
        out = digits + "e" + exponent if k == 1 else digits[0] + "." + digits[1:] + "e" + exponent
    return sign + out


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _utf16_key(s: str) -> bytes:
    # Big-endian UTF-16 bytes compare like the sequences of UTF-16 code units.
    return s.encode("utf-16-be", "surrogatepass")


def _canon(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        out.append(es_number(float(v)))  # every JSON number is a double in JCS
    elif isinstance(v, float):
        out.append(es_number(v))
    elif isinstance(v, str):
        out.append(_string(v))
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _canon(item, out)
        out.append("]")
    elif isinstance(v, dict):
        out.append("{")
        for i, k in enumerate(sorted(v, key=_utf16_key)):
            if not isinstance(k, str):
                raise TypeError("member names are strings")
            if i:
                out.append(",")
            out.append(_string(k))
            out.append(":")
            _canon(v[k], out)
        out.append("}")
    else:
        raise TypeError(f"not a JSON value: {type(v).__name__}")


def canonicalize(v: Any) -> str:
    """The RFC 8785 text of a JSON value (as parsed by `loads`)."""
    out: list[str] = []
    _canon(v, out)
    return "".join(out)


def canonical_bytes(v: Any) -> bytes:
    try:
        return canonicalize(v).encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate from a "\ud800" escape
        raise ValueError("a string holds a lone surrogate") from e


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(data: bytes | str) -> Any:
    """Strict JSON parsing: no NaN or Infinity literals."""
    return json.loads(data, parse_constant=_no_constant)


def dumps(v: Any) -> bytes:
    """Wire bytes of a message (any member order; here compact and UTF-8)."""
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


# --- Keys and signatures ---------------------------------------------------------------


def signed_text(env: dict) -> bytes:
    """The bytes a signature covers: the canonical form of every member but `sig`."""
    return canonical_bytes({k: v for k, v in env.items() if k != "sig"})


class AgentKey:
    """An agent's Ed25519 key; its id is the public key."""

    def __init__(self, signing_key: nacl.signing.SigningKey):
        self._key = signing_key
        self.id = agent_id(bytes(signing_key.verify_key))

    @classmethod
    def generate(cls) -> "AgentKey":
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> "AgentKey":
        return cls(nacl.signing.SigningKey(seed))

    def __repr__(self) -> str:
        return f"AgentKey({self.id})"  # never the secret

    def sign(self, env: dict, nonce: str | None = None) -> dict:
        """Signs `env` in place as its sender: sets `from` and `nonce`, then `sig`."""
        env["from"] = self.id
        env["nonce"] = nonce if nonce is not None else new_nonce()
        env.pop("sig", None)
        env["sig"] = b64url_encode(self._key.sign(signed_text(env)).signature)
        return env


def verify_signature(env: dict) -> None:
    """The signature checks of the edge, on a message as received; raises `Refused`.

    A `sig` that is not 64 bytes of strict base64url is refused like the Rust edge does,
    at its shape check (5014); the protocol document calls that 5017.
    """
    sig = env.get("sig")
    if sig is None:
        if env.get("kind") in SIGNED_KINDS:
            raise Refused(SIGNATURE_MISSING, f"a {env.get('kind')} must be signed")
        return
    if not isinstance(sig, str):
        raise Refused(SCHEMA_INVALID, "sig is not a string")
    try:
        raw_sig = b64url_decode(sig, 64)
    except ValueError as e:
        raise Refused(SCHEMA_INVALID, f"sig: {e}") from e
    if env.get("nonce") is None:
        raise Refused(SIGNATURE_INVALID, "signed message has no nonce")
    try:
        key = nacl.signing.VerifyKey(public_key(env.get("from")))
    except (ValueError, TypeError, nacl.exceptions.CryptoError) as e:
        raise Refused(SIGNATURE_INVALID, f"sender is not a public key: {e}") from e
    try:
        text = signed_text(env)
    except (ValueError, TypeError) as e:
        raise Refused(SIGNATURE_INVALID, f"no canonical form: {e}") from e
    try:
        # libsodium: strict (canonical S, no small-order keys or R).
        key.verify(text, raw_sig)
    except nacl.exceptions.BadSignatureError as e:
        raise Refused(SIGNATURE_INVALID, "signature does not verify against the sender's key") from e


def check(env: Any, now: int, me: str | None = None, max_ttl_ms: int = MAX_TTL_MS) -> dict:
    """The edge checks of docs/protocol.md that need no state, in the documented order
    (a subset of the shape checks). Returns the envelope or raises `Refused`."""
    if not isinstance(env, dict):
        raise Refused(MALFORMED, "message is not a json object")
    version = env.get("aixp")
    if version is None:
        raise Refused(INCOMPATIBLE, f"missing aixp version; supported: {VERSION}")
    if not isinstance(version, str) or not re.fullmatch(r"[0-9]+\.[0-9]+", version):
        raise Refused(MALFORMED, f"aixp {version!r} is not major.minor")
    if version.split(".")[0] != "1":
        raise Refused(INCOMPATIBLE, f"unsupported version {version}; supported: {VERSION}")
    kind = env.get("kind")
    for member, typ in (("id", str), ("kind", str), ("from", str), ("to", str), ("body", dict),
                        ("expires_at", int), ("hops", int), ("max_hops", int)):
        if not isinstance(env.get(member), typ) or isinstance(env.get(member), bool):
            raise Refused(SCHEMA_INVALID, f"{member} is missing or of the wrong type")
    expires_at = env["expires_at"]
    if expires_at <= now:
        raise Refused(EXPIRED, f"message expired at {expires_at}")
    if expires_at - now > max_ttl_ms:
        raise Refused(TTL_TOO_LONG, f"time-to-live of {expires_at - now} ms exceeds {max_ttl_ms} ms")
    reply_by = env.get("reply_by")
    if reply_by is not None and reply_by > expires_at:
        raise Refused(SCHEMA_INVALID, "reply_by is after expires_at")
    lineage = env.get("lineage") or []
    if env["hops"] > env["max_hops"] or env["max_hops"] > MAX_HOPS_CAP or len(lineage) > MAX_HOPS_CAP:
        raise Refused(HOP_LIMIT, "hop limit")
    if env["hops"] < 1 and kind not in NON_TASK_KINDS:
        raise Refused(SCHEMA_INVALID, f"hops must be at least 1 on {kind}")
    if me is not None and not env["to"].startswith("pool.") and env["to"] != me:
        raise Refused(FORBIDDEN, f"message is addressed to {env['to']}, not to {me}")
    if len(set(lineage)) != len(lineage) or (me is not None and kind in ("cfp", "accept") and me in lineage):
        raise Refused(5010, "loop in the lineage")
    if len(lineage) > env["hops"]:
        raise Refused(SCHEMA_INVALID, "lineage longer than hops")
    if env.get("conversation") is None and kind not in NON_TASK_KINDS:
        raise Refused(SCHEMA_INVALID, f"conversation is missing on {kind}")
    if kind in ("cfp", "accept"):
        task = env["body"].get("task") or {}
        for what in ("capability", "pool"):
            name = task.get(what, "global")
            if not isinstance(name, str) or not NAME_RE.match(name):
                raise Refused(SCHEMA_INVALID, f"{what} {name!r} is not 1-64 of [A-Za-z0-9_-]")
    verify_signature(env)
    return env


def decode(data: bytes, now: int, me: str | None = None) -> dict:
    """Parses and checks one received message."""
    try:
        env = loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise Refused(MALFORMED, f"not json: {e}") from e
    return check(env, now, me)


# --- Messages --------------------------------------------------------------------------


def reply(to: dict, kind: str, body: dict, *, epoch: int | None = None, ttl_ms: int = 60_000,
          reply_by: int | None = None) -> dict:
    """An unsigned answer to `to` within its task: same conversation, depth, hop limit and
    lineage (the lineage lists the managers above the task, so it does not change within
    one conversation); `in_reply_to` names `to`, the recipient is its sender."""
    now = now_ms()
    env = {
        "aixp": VERSION,
        "id": uuid7(now),
        "kind": kind,
        "from": None,  # set by AgentKey.sign
        "to": to["from"],
        "conversation": to.get("conversation"),
        "epoch": to.get("epoch", 0) if epoch is None else epoch,
        "in_reply_to": to["id"],
        "expires_at": now + ttl_ms,
        "hops": to["hops"],
        "max_hops": to["max_hops"],
        "lineage": list(to.get("lineage") or []),
        "body": body,
    }
    if reply_by is not None:
        env["reply_by"] = reply_by
    return env


def propose(cfp: dict, key: AgentKey, *, price: int, eta_ms: int, load: float) -> dict:
    """A signed bid on `cfp`, standing until 30 s from now (at most the cap of 10 minutes)."""
    env = reply(cfp, "propose", {"price": price, "eta_ms": eta_ms, "load": load})
    env["reply_by"] = env["expires_at"] - 30_000
    return key.sign(env)


def inform(accept: dict, key: AgentKey, result: Any) -> dict:
    """A signed result report for the contract `accept` awarded (its epoch)."""
    spent = {"subtasks": 0, "messages": 0, "retries": 0, "price": 0}
    return key.sign(reply(accept, "inform", {"result": result, "spent": spent}))


def agent_subject(prefix: str, to: str, sender: str) -> str:
    """NATS subject of a message to one agent."""
    return f"{prefix}.agent.{to}.{sender}"


def pool_subject(prefix: str, pool: str, capability: str, sender: str) -> str:
    return f"{prefix}.pool.{pool}.{capability}.{sender}"
