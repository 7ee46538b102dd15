"""Secret-free forms of what the project shows: URLs without credentials, paths without homes.

Error messages, API answers and logs name services and files; none of them may carry a
password (``redis://:pw@host``, ``?password=``, ``http://user:pw@prometheus``) or tell a
remote caller how this machine's disk is laid out.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Query parameters that carry secrets in the URIs this project accepts (redis-py reads
#: ``password`` from the query string; the others are common spellings).
SECRET_PARAMS = frozenset({"password", "passwd", "pass", "pwd", "token", "secret",
                           "access_token", "api_key", "apikey", "key"})
HIDDEN = "***"


def redact_url(url: str) -> str:
    """``url`` with any password in its user info or query string replaced by ``***``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return HIDDEN  # unparseable: it may be all secret
    netloc, query = parts.netloc, parts.query
    if "@" in netloc:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        # A lone user name may be a password too (``redis://secret@host`` is a common form).
        user = f"{parts.username or ''}:{HIDDEN}" if parts.password is not None else HIDDEN
        netloc = f"{user}@{host}" + (f":{port}" if port else "")
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(k.lower() in SECRET_PARAMS for k, _ in pairs):
        query = urlencode([(k, HIDDEN if k.lower() in SECRET_PARAMS else v)
                           for k, v in pairs], safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    rebuilt = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    if not netloc and url.startswith(f"{parts.scheme}://"):
        rebuilt = rebuilt.replace(f"{parts.scheme}:", f"{parts.scheme}://", 1)
    return rebuilt


def public_path(path: PurePath | str) -> str:
    """A path as a remote caller may see it: its last two parts, never the absolute path."""
    parts = PurePath(path).parts
    return "/".join(parts[-2:]) if parts else ""


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()]+")
_SECRET_ASSIGNMENT = re.compile(r"(?i)\b(password|passwd|pwd|token|secret)=([^\s&'\"(),;]+)")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/*…-])(?:/[\w.@+-]+){2,}/?")


def redact_text(text: str) -> str:
    """Free text (an error message) without credentials in URLs or ``password=``, and with
    absolute paths cut to their last two parts."""
    text = _URL.sub(lambda m: _scrub_url(m.group(0)), text)
    text = _SECRET_ASSIGNMENT.sub(lambda m: f"{m.group(1)}={HIDDEN}", text)
    return _ABSOLUTE_PATH.sub(lambda m: public_path(m.group(0)), text)


def _scrub_url(url: str) -> str:
    redacted = redact_url(url)
    if redacted.startswith("file://"):
        return "file://…/" + public_path(redacted[len("file://"):])
    return redacted
