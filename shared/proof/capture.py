"""Getting a submission's proof into a form the grader can read.

Files come from Supabase Storage with the service key. URLs are fetched
server-side behind an SSRF guard: http(s) only; every address a host resolves
to must be public (no loopback, private, link-local, metadata, multicast,
reserved, or their IPv6 forms), checked again at every redirect hop; the
connection goes to the checked address itself, so DNS cannot change its mind
between check and connect. A timeout, a byte cap and an allow-list of text
and image types apply. HTML is reduced to its main text.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

from shared.config import get_settings

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/heic"})
INLINE_TYPES = IMAGE_TYPES | {"application/pdf"}
URL_TEXT_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain", "text/markdown"})
TEXT_SUFFIXES = (
    ".txt",
    ".md",
    ".markdown",
    ".py",
    ".js",
    ".ts",
    ".tsx",
    ".jsx",
    ".java",
    ".go",
    ".rs",
    ".c",
    ".cpp",
    ".h",
    ".rb",
    ".php",
    ".cs",
    ".swift",
    ".kt",
    ".sql",
    ".sh",
    ".json",
    ".yaml",
    ".yml",
    ".toml",
    ".html",
    ".css",
    ".csv",
    ".tex",
)
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
# What the proofs bucket lets a browser upload (its allowed_mime_types, `threativator buckets`): the
# images and PDFs the grader reads inline, Word documents, and text and code files, which browsers
# label text/* or with one of these application types. Storage matches `text/*` by its first part.
UPLOAD_MIME_TYPES = (
    *sorted(INLINE_TYPES | {"image/heif"}),
    DOCX,
    "text/*",
    "application/json",
    "application/x-yaml",
    "application/yaml",
    "application/toml",
    "application/sql",
    "application/x-sh",
    "application/javascript",
    "application/x-tex",
)
MAX_REDIRECTS = 5


class ProofRefused(Exception):
    """The proof cannot be graded (unsafe URL, too large, wrong type); the message says why."""


@dataclass
class Proof:
    """What the grader sees: text parts and inline binary parts, with a digest of the raw proof."""

    kind: Literal["file", "url"]
    source: str
    sha256: str
    text: str | None = None
    blobs: list[tuple[bytes, str]] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Proof(kind={self.kind!r}, sha256={self.sha256[:12]}, blobs={len(self.blobs)})"


# -----------------------------------------------------------------------------
# Files
# -----------------------------------------------------------------------------
def from_file(path: str, data: bytes) -> Proof:
    import filetype

    if len(data) > get_settings().grading_max_proof_bytes:
        raise ProofRefused("the proof file is larger than the grader accepts")
    digest = hashlib.sha256(data).hexdigest()
    kind = filetype.guess(data)
    mime = kind.mime if kind else None
    if mime in INLINE_TYPES:
        return Proof("file", path, digest, blobs=[(data, str(mime))])
    if mime == DOCX:
        return Proof("file", path, digest, text=_docx_text(data))
    if mime is None and path.lower().endswith(TEXT_SUFFIXES) and b"\x00" not in data:
        try:
            return Proof("file", path, digest, text=data.decode("utf-8"))
        except UnicodeDecodeError:
            pass
    raise ProofRefused(f"the grader cannot read this kind of file ({mime or 'unknown type'})")


def _docx_text(data: bytes) -> str:
    import io

    from docx import Document

    try:
        document = Document(io.BytesIO(data))
    except Exception:
        raise ProofRefused("the document could not be read") from None
    return "\n".join(p.text for p in document.paragraphs if p.text.strip())


# -----------------------------------------------------------------------------
# URLs, behind the SSRF guard
# -----------------------------------------------------------------------------
Resolver = Callable[[str, int], list[str]]
Connector = Callable[[str, int], tuple[str, int]]


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ProofRefused("the proof URL's host does not resolve") from None
    return sorted({str(info[4][0]) for info in infos})


def direct(ip: str, port: int) -> tuple[str, int]:
    return ip, port


def allowed_address(address: str) -> bool:
    """Only globally routable unicast addresses; IPv4-mapped IPv6 is judged as IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None:
        ip = ip.sixtofour
    return bool(ip.is_global) and not (
        ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_unspecified
    )


def _check_url(url: str, resolver: Resolver) -> tuple[str, str, int, str]:
    """(scheme, host, port, checked ip) or ProofRefused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ProofRefused("only http and https proof URLs are accepted")
    if not parts.hostname or parts.username or parts.password:
        raise ProofRefused("the proof URL is not a plain web address")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolver(parts.hostname, port)
    if not addresses or not all(allowed_address(a) for a in addresses):
        raise ProofRefused("the proof URL points at a private or reserved address")
    return parts.scheme, parts.hostname, port, addresses[0]


# The network boundary: name resolution and where a checked address is dialled. Tests, which cannot
# reach public addresses, swap these for a table of test hosts; the checks above them run unchanged.
RESOLVER: Resolver = system_resolver
CONNECTOR: Connector = direct


def fetch(url: str, *, resolver: Resolver | None = None, connector: Connector | None = None) -> Proof:
    """GET a proof URL safely and read it as the grader will."""
    body, content_type = fetch_raw(url, resolver=resolver, connector=connector)
    return from_page(url, body, content_type)


def from_page(url: str, body: bytes, content_type: str) -> Proof:
    """A fetched page (as captured) as the grader sees it: an image, or the page's main text."""
    mime = content_type.split(";", 1)[0].strip().lower()
    digest = hashlib.sha256(body).hexdigest()
    if mime in IMAGE_TYPES:
        return Proof("url", url, digest, blobs=[(body, mime)])
    text = body.decode(_charset(content_type), errors="replace")
    return Proof("url", url, digest, text=main_text(text) if "html" in mime else text)


def fetch_raw(url: str, *, resolver: Resolver | None = None, connector: Connector | None = None) -> tuple[bytes, str]:
    """(body, Content-Type) of a proof URL; every hop is checked, and the connection uses the checked address."""
    import urllib3

    resolver = resolver or RESOLVER
    connector = connector or CONNECTOR
    settings = get_settings()
    # One deadline for the whole fetch, redirects and body included: a server trickling bytes
    # cannot hold the grader longer than URL_FETCH_TIMEOUT_SECONDS.
    deadline = time.monotonic() + settings.url_fetch_timeout_seconds
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        timeout = urllib3.Timeout(connect=min(5.0, _remaining(deadline)), read=_remaining(deadline))
        scheme, host, port, ip = _check_url(current, resolver)
        target_ip, target_port = connector(ip, port)
        parts = urlsplit(current)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        pool: urllib3.HTTPConnectionPool
        if scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                target_ip,
                target_port,
                timeout=timeout,
                retries=False,
                server_hostname=host,
                assert_hostname=host,
                maxsize=1,
            )
        else:
            pool = urllib3.HTTPConnectionPool(target_ip, target_port, timeout=timeout, retries=False, maxsize=1)
        try:
            response = pool.urlopen(
                "GET",
                path,
                headers={
                    "Host": parts.netloc.rsplit("@", 1)[-1],
                    "User-Agent": "ThreativatorGrader/1.0",
                    "Accept": "text/html,text/plain,image/*",
                },
                redirect=False,
                preload_content=False,
                timeout=timeout,
            )
        except urllib3.exceptions.TimeoutError:
            raise ProofRefused("the proof URL took too long to answer") from None
        except urllib3.exceptions.HTTPError:
            raise ProofRefused("the proof URL could not be fetched") from None
        try:
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                if not location:
                    raise ProofRefused("the proof URL redirects nowhere")
                current = urljoin(current, location)
                continue
            if response.status != 200:
                raise ProofRefused(f"the proof URL answered {response.status}")
            mime = (response.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if mime not in URL_TEXT_TYPES and mime not in IMAGE_TYPES:
                raise ProofRefused(f"the proof URL serves {mime or 'an unknown type'}, not text or an image")
            body = _read_capped(response, settings.url_fetch_max_bytes, deadline)
        finally:
            response.release_conn()
            pool.close()
        return body, str(response.headers.get("Content-Type") or mime)
    raise ProofRefused("the proof URL redirects too many times")


def _charset(content_type: str) -> str:
    import codecs

    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset":
            try:
                return codecs.lookup(value.strip('"').strip()).name
            except LookupError:
                break
    return "utf-8"


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ProofRefused("the proof URL took too long to answer")
    return left


def _read_capped(response: Any, cap: int, deadline: float) -> bytes:
    """The body, at most `cap` bytes, read before `deadline`: each read returns what one receive got
    and waits at most the time left, so neither a huge page nor a trickle outlasts the deadline."""
    import urllib3

    chunks: list[bytes] = []
    total = 0
    while True:
        sock = getattr(response.connection, "sock", None)
        if sock is not None:
            sock.settimeout(_remaining(deadline))
        try:
            chunk = response.read1(64 * 1024)
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            raise ProofRefused("the proof URL took too long to answer") from None
        except urllib3.exceptions.HTTPError:
            raise ProofRefused("the proof URL could not be read") from None
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > cap:
            raise ProofRefused("the proof page is larger than the grader accepts")
        chunks.append(chunk)
        _remaining(deadline)


def main_text(html: str) -> str:
    """The readable text of a page: scripts, styles, navigation and chrome removed."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "svg", "iframe"]):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    lines = [line.strip() for line in root.get_text("\n").splitlines()]
    return "\n".join(line for line in lines if line)
