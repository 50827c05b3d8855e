"""Issuance policy: a list of small rules, each with one name and one message.

The same list runs when ``mutls csr new`` builds a CSR and when a CA signs one, so a CSR that the
CLI accepted is never refused later for a reason the CLI did not mention, and a CSR made elsewhere
(``openssl req``) is judged by the same rules. Every broken rule is reported, not just the first.

The subject rules follow a provider's published CSR guide (seed 003): the country is an ISO 3166
two-letter code; subject fields refuse ``< > ~ ! @ # $ % ^ * / \\ ( ) ? , &``; the common name is a
fully qualified domain name; SANs are allowed; wildcards are refused.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mutls.errors import PolicyViolation, RuleViolation
from mutls.pki.keys import key_weakness
from mutls.policy.countries import ISO_3166_ALPHA2

__all__ = [
    "DEFAULT_RULES",
    "FORBIDDEN_SUBJECT_CHARACTERS",
    "SERVER_RULES",
    "IssuanceRequest",
    "Rule",
    "check_request",
    "evaluate",
    "is_fqdn",
    "is_hostname",
]

FORBIDDEN_SUBJECT_CHARACTERS = frozenset("<>~!@#$%^*/\\()?,&")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# emailAddress holds an '@' by nature; openssl's default CSR prompt (seed 004) offers it.
_EXEMPT_FROM_CHARACTER_RULE = {NameOID.EMAIL_ADDRESS}


@dataclass(frozen=True, kw_only=True)
class IssuanceRequest:
    """What the rules look at: the CSR, and the validity asked for when signing.

    ``cryptography`` decodes ``csr.subject`` and the SAN extension anew on every access; the
    rules read them through the cached properties below, so one evaluation decodes each once.
    """

    csr: x509.CertificateSigningRequest
    validity: timedelta | None = None
    max_validity: timedelta | None = None

    @cached_property
    def subject(self) -> x509.Name:
        return self.csr.subject

    @cached_property
    def common_names(self) -> tuple[str, ...]:
        return tuple(
            a.value if isinstance(a.value, str) else a.value.decode("latin-1")
            for a in self.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        )

    @cached_property
    def san(self) -> x509.SubjectAlternativeName | None:
        try:
            return self.csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return None

    @cached_property
    def dns_sans(self) -> tuple[str, ...]:
        if self.san is None:
            return ()
        return tuple(str(n) for n in self.san.get_values_for_type(x509.DNSName))


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One rule: ``check`` returns None when satisfied, else the message saying what it found."""

    name: str
    description: str
    check: Callable[[IssuanceRequest], str | None]


def is_hostname(name: str) -> bool:
    """A DNS host name: one or more LDH labels (``localhost`` included), not an IP address."""
    name = name.removesuffix(".")
    if not name or len(name) > 253 or _is_ip(name):
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_fqdn(name: str) -> bool:
    """A fully qualified domain name: two or more LDH labels, not an IP, TLD not numeric."""
    name = name.removesuffix(".")
    if not name or len(name) > 253 or _is_ip(name):
        return False
    labels = name.split(".")
    if len(labels) < 2 or labels[-1].isdigit():
        return False
    return all(_LABEL.match(label) for label in labels)


def _subject_values(subject: x509.Name) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for attribute in subject:
        value = attribute.value
        text = value if isinstance(value, str) else value.decode("latin-1")
        short = getattr(attribute.oid, "_name", None) or attribute.oid.dotted_string
        if attribute.oid not in _EXEMPT_FROM_CHARACTER_RULE:
            out.append((_SHORT_NAMES.get(attribute.oid, short), text))
    return out


_SHORT_NAMES = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
}


# --- the rules ----------------------------------------------------------------------------------


def _signature(request: IssuanceRequest) -> str | None:
    if request.csr.is_signature_valid:
        return None
    return "the CSR's signature does not verify; it was altered or damaged after signing"


def _country(request: IssuanceRequest) -> str | None:
    values = request.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    for attribute in values:
        value = attribute.value if isinstance(attribute.value, str) else ""
        if value not in ISO_3166_ALPHA2:
            return f"C must be a two-letter ISO 3166 country code such as CA; found {value!r}"
    return None


def _characters(request: IssuanceRequest) -> str | None:
    bad: list[str] = []
    for field, value in _subject_values(request.subject):
        found = sorted({ch for ch in value if ch in FORBIDDEN_SUBJECT_CHARACTERS})
        if found:
            bad.append(f"{field}={value!r} contains {' '.join(found)}")
    if not bad:
        return None
    return "subject fields may not contain < > ~ ! @ # $ % ^ * / \\ ( ) ? , &; " + "; ".join(bad)


def _common_name_fqdn(request: IssuanceRequest) -> str | None:
    names = request.common_names
    if not names:
        return "the subject needs a common name (CN): the FQDN of the calling service"
    if len(names) > 1:
        return f"the subject must have exactly one CN; found {len(names)}"
    name = names[0]
    if "*" in name:
        return None  # the wildcard rule reports it
    if not is_fqdn(name):
        return (
            f"CN must be a fully qualified domain name such as services.example.com; found {name!r}"
        )
    return None


def _no_wildcards(request: IssuanceRequest) -> str | None:
    wild = [n for n in [*request.common_names, *request.dns_sans] if "*" in n]
    if not wild:
        return None
    return f"wildcard names are not issued; found {', '.join(repr(n) for n in wild)}"


def _san_names(request: IssuanceRequest) -> str | None:
    bad = [n for n in request.dns_sans if "*" not in n and not is_fqdn(n)]
    if not bad:
        return None
    return f"DNS subject alternative names must be FQDNs; found {', '.join(repr(n) for n in bad)}"


def _server_common_name(request: IssuanceRequest) -> str | None:
    names = request.common_names
    if len(names) > 1:
        return f"the subject must have at most one CN; found {len(names)}"
    if not names and not request.dns_sans and not _has_ip_san(request):
        return "a server certificate needs a host name: a CN or a DNS/IP subject alternative name"
    if names and "*" not in names[0] and not (is_hostname(names[0]) or _is_ip(names[0])):
        return f"CN must be a host name such as api.example.com; found {names[0]!r}"
    return None


def _server_san_names(request: IssuanceRequest) -> str | None:
    bad = [n for n in request.dns_sans if "*" not in n and not is_hostname(n)]
    if not bad:
        return None
    return f"DNS subject alternative names must be host names; found {', '.join(map(repr, bad))}"


def _has_ip_san(request: IssuanceRequest) -> bool:
    return request.san is not None and bool(request.san.get_values_for_type(x509.IPAddress))


def _key_strength(request: IssuanceRequest) -> str | None:
    try:
        public_key = request.csr.public_key()
    except ValueError:
        return "the CSR's public key could not be read"
    return key_weakness(public_key)


def _validity(request: IssuanceRequest) -> str | None:
    if request.validity is None or request.max_validity is None:
        return None
    if request.validity <= timedelta(0):
        return f"validity must be positive; found {request.validity.days} days"
    if request.validity > request.max_validity:
        return (
            f"validity may be at most {request.max_validity.days} days; "
            f"requested {request.validity.days} days"
        )
    return None


def _client_auth_usage(request: IssuanceRequest) -> str | None:
    try:
        requested = request.csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None  # the CA sets clientAuth itself
    names = {oid.dotted_string for oid in requested}
    wanted = {
        ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string,
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE.dotted_string,
    }
    if names & wanted:
        return None
    shown = ", ".join(sorted(getattr(oid, "_name", oid.dotted_string) for oid in requested))
    return f"the CSR asks for extended key usage {shown}; a client certificate needs clientAuth"


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(name="csr_signature", description="the CSR is signed by its own key", check=_signature),
    Rule(
        name="key_strength",
        description="RSA >= 2048 bits, EC P-256/384/521 or EdDSA",
        check=_key_strength,
    ),
    Rule(name="country_code", description="C is an ISO 3166 two-letter code", check=_country),
    Rule(
        name="subject_characters",
        description="no < > ~ ! @ # $ % ^ * / \\ ( ) ? , & in subject fields",
        check=_characters,
    ),
    Rule(
        name="common_name_fqdn",
        description="CN is a fully qualified domain name",
        check=_common_name_fqdn,
    ),
    Rule(name="no_wildcards", description="no wildcard in CN or DNS SANs", check=_no_wildcards),
    Rule(
        name="san_dns_fqdn",
        description="DNS SANs are fully qualified domain names",
        check=_san_names,
    ),
    Rule(
        name="max_validity",
        description="requested validity within the profile's maximum",
        check=_validity,
    ),
    Rule(
        name="client_auth_usage",
        description="a requested extendedKeyUsage includes clientAuth",
        check=_client_auth_usage,
    ),
)


#: Server certificates name hosts, which may be single-label (``localhost``) or IP addresses;
#: the FQDN rules of a provider's client-certificate guide do not apply to them.
SERVER_RULES: tuple[Rule, ...] = tuple(
    {
        "common_name_fqdn": Rule(
            name="common_name_hostname",
            description="CN, if present, is a host name or IP address",
            check=_server_common_name,
        ),
        "san_dns_fqdn": Rule(
            name="san_dns_hostname",
            description="DNS SANs are host names",
            check=_server_san_names,
        ),
    }.get(rule.name, rule)
    for rule in DEFAULT_RULES
    if rule.name != "client_auth_usage"
)


def evaluate(
    request: IssuanceRequest, rules: Sequence[Rule] = DEFAULT_RULES
) -> list[RuleViolation]:
    """Every rule the request breaks, in rule order."""
    violations: list[RuleViolation] = []
    for rule in rules:
        message = rule.check(request)
        if message is not None:
            violations.append(RuleViolation(rule=rule.name, message=message))
    return violations


def check_request(request: IssuanceRequest, rules: Sequence[Rule] = DEFAULT_RULES) -> None:
    """Raise :class:`~mutls.errors.PolicyViolation` naming every broken rule."""
    violations = evaluate(request, rules)
    if violations:
        raise PolicyViolation(violations)
