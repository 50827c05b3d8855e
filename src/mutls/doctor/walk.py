"""``diagnose(url, source, options, now)``: the doctor's steps in order, stopping at the first ✗.

Order: our material (offline), name, TCP, the TLS versions the server accepts, the server's chain
and name (verified by :func:`mutls.pki.verify.verify_chain` on the chain fetched with
verification off, so the failure carries a mutls code), the CA names the server accepts for
client certificates, the handshake with our certificate, the HTTP answer.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from mutls.errors import (
    CertificateError,
    MissingIntermediate,
    MutlsError,
    PartnerCertificateUntrusted,
    PartnerError,
    PartnerRejectedCertificate,
    PartnerRequiresClientCertificate,
    PartnerTlsHandshakeFailed,
)
from mutls.pki.chain import is_self_signed
from mutls.pki.inspect import name_to_text
from mutls.pki.loader import load_certificates
from mutls.pki.material import Material
from mutls.pki.verify import Purpose, verify_chain
from mutls.tls.egress_context import EgressTlsPreset, partner_client_context

from .material import ClientSource, chain_names, check_material
from .probe import (
    HttpAnswer,
    Target,
    TlsOutcome,
    connect,
    handshake,
    parse_target,
    request,
    resolve,
)
from .report import Report, Step

__all__ = ["DoctorOptions", "diagnose"]

_VERSIONS = (("TLSv1.3", EgressTlsPreset.TLS13), ("TLSv1.2", EgressTlsPreset.TLS12))
_NO_MATERIAL_HINT = (
    "the server requires a client certificate: pass --cert C --key K, --p12 F, or --secret NAME "
    "--env ENV (for the egress proxy: the route's certificate_secret)"
)
_SERVER_HINTS = {
    "unknown_issuer": "if the partner uses a private CA, pass its CA certificate with --ca "
    "(for the egress proxy: the route's ca_bundle_secret, or the secret's ca_bundle_pem)",
    "name_mismatch": "call the host the certificate names, or pass --servername NAME when you "
    "connect by IP address or through a tunnel (for the egress proxy: the route's tls_servername)",
    "certificate_expired": "the partner must renew its server certificate; nothing on the "
    "client side fixes this",
    "certificate_not_yet_valid": "check this machine's clock; else the partner installed a "
    "certificate too early",
    "missing_intermediate": "the server sends its certificate without the intermediate CA: the "
    "partner must configure the full chain (nginx: ssl_certificate with the fullchain); meanwhile "
    "add the intermediate to your CA bundle (--ca)",
}
_REJECTION_HINTS = {
    "unknown_ca": "the server does not trust our certificate's issuer: use the certificate the "
    "partner issued for this environment (a sandbox certificate against production?), or ask the "
    "partner to trust your CA",
    "bad_certificate": "the server could not use our certificate: check that the chain is in "
    "order (leaf first) and complete; some servers say bad_certificate for an unknown CA too",
    "certificate_expired": "the server says our certificate expired: renew it and use the new one",
    "certificate_revoked": "our certificate was revoked: get a new one issued",
    "certificate_unknown": "the server refused our certificate without saying why: compare its "
    "issuer with the CA names the server accepts (step server.client_ca)",
    "access_denied": "the certificate is valid but not allowed: ask the partner to register it",
}


@dataclass(frozen=True, kw_only=True)
class DoctorOptions:
    servername: str | None = None  # SNI and the name to check; default: the URL's host
    cas: tuple[x509.Certificate, ...] = ()  # what the server is verified against; () = system
    ca_origin: str = "the system CA store"
    preset: EgressTlsPreset = EgressTlsPreset.DEFAULT
    timeout: float = 10.0  # per network step


def diagnose(
    url: str, source: ClientSource | None, *, options: DoctorOptions, now: datetime
) -> Report:
    """The checklist for ``url``. Raises only for an unusable URL (``invalid_argument``)."""
    target = parse_target(url, options.servername)
    steps: list[Step] = []
    material: Material | None = None
    if source is not None:
        check = check_material(source, now=now)
        steps.extend(check.steps)
        if not check.ok:
            return Report(url=url, steps=tuple(steps))
        material = check.material
    _walk(target, material, options, now, steps)
    return Report(url=url, steps=tuple(steps))


def _walk(
    target: Target,
    material: Material | None,
    options: DoctorOptions,
    now: datetime,
    steps: list[Step],
) -> None:
    try:
        addresses = resolve(target)
    except PartnerError as error:
        steps.append(Step.failed("dns", error))
        return
    shown = ", ".join(host for host, _ in addresses[:4])
    steps.append(Step.passed("dns", f"{target.host} resolves to {shown}"))
    try:
        connect(target, addresses, options.timeout).close()
    except PartnerError as error:
        steps.append(Step.failed("tcp", error))
        return
    steps.append(Step.passed("tcp", f"TCP connection to {target.host} port {target.port}"))

    probes = {
        name: handshake(
            target,
            addresses,
            partner_client_context(None, preset=preset, verify=False),
            sent_certificate=False,
            timeout=options.timeout,
            wait_verdict=True,
        )
        for name, preset in _VERSIONS
    }
    probe = _versions(probes, options.preset, steps)
    for outcome in probes.values():
        outcome.close()
    if probe is None:
        return
    if not _server_certificate(probe, target, options, now, steps):
        return
    if not _client_ca(probe, material, steps):
        return
    _handshake_and_request(target, addresses, material, options, steps)


def _versions(
    probes: dict[str, TlsOutcome], preset: EgressTlsPreset, steps: list[Step]
) -> TlsOutcome | None:
    """The TLS versions step; the probe to read the server's chain from (ours, best first)."""
    accepted = [name for name, outcome in probes.items() if outcome.version and outcome.peer_chain]
    low, high = preset.versions
    ours = [name for name, p in _VERSIONS if low <= p.versions[0] <= high]
    overlap = [name for name in accepted if name in ours]
    if not accepted:
        errors = [p.error for p in probes.values() if p.error is not None]
        why = "; ".join(dict.fromkeys(e.message for e in errors)) or "no answer"
        steps.append(
            Step.failed(
                "tls.versions",
                PartnerTlsHandshakeFailed(
                    f"the server completed no TLS handshake, neither TLS 1.3 nor TLS 1.2: {why}",
                    reason="no_tls",
                ),
                hint="check that the port speaks TLS (not plain HTTP) and that the server "
                "accepts TLS 1.2 or 1.3; `openssl s_client -connect HOST:PORT` shows what it says",
            )
        )
        return None
    if not overlap:
        steps.append(
            Step.failed(
                "tls.versions",
                PartnerTlsHandshakeFailed(
                    f"the server accepts {' and '.join(accepted)} only; this client is set to "
                    f"{preset.describe} ({preset.value})",
                    reason="protocol_version",
                ),
                hint="allow the server's version: --tls default (TLS 1.2-1.3); for the egress "
                f"proxy, --tls-preset default or {_preset_for(accepted)} on the route",
            )
        )
        return None
    note = None
    if overlap == ["TLSv1.2"]:
        note = (
            "the server speaks TLS 1.2 only; that is fine for mutls (the default preset "
            "accepts TLS 1.2 with forward-secret AEAD suites)"
        )
    steps.append(
        Step.passed(
            "tls.versions",
            f"the server accepts {', '.join(accepted)}; we offer {', '.join(ours)}; "
            f"the handshake will use {overlap[0]}",
            hint=note,
        )
    )
    return probes[overlap[0]]


def _preset_for(accepted: list[str]) -> str:
    return "tls12" if accepted == ["TLSv1.2"] else "tls13"


def _system_anchors() -> tuple[x509.Certificate, ...]:
    paths = ssl.get_default_verify_paths()
    for candidate in (
        paths.cafile,
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ):
        if candidate and Path(candidate).is_file():
            try:
                return tuple(load_certificates(Path(candidate).read_bytes()))
            except (OSError, MutlsError):
                continue
    return ()


def _server_certificate(
    probe: TlsOutcome,
    target: Target,
    options: DoctorOptions,
    now: datetime,
    steps: list[Step],
) -> bool:
    leaf, *rest = probe.peer_chain
    anchors: Sequence[x509.Certificate] = options.cas or _system_anchors()
    try:
        verified = verify_chain(
            leaf,
            anchors=anchors,
            intermediates=rest,
            purpose=Purpose.SERVER,
            at=now,
            hostname=target.servername,
        )
    except CertificateError as error:
        why = error.message
        if error.code == "unknown_issuer" and not options.cas:
            # The verifier lists the whole bundle; the system store is ~150 roots: name the top.
            top = probe.peer_chain[-1]
            why = (
                f"the chain the server sends ends at {name_to_text(top.subject)}, issued by "
                f"{name_to_text(top.issuer)}, which is not in the system CA store"
            )
        steps.append(
            Step.failed(
                "server.certificate",
                PartnerCertificateUntrusted(
                    f"the server's certificate fails our check against {options.ca_origin}: {why}",
                    reason=error.code,
                ),
                hint=_SERVER_HINTS.get(error.code) or error.hint or None,
            )
        )
        return False
    top = verified.chain[-1]
    steps.append(
        Step.passed(
            "server.certificate",
            f"{name_to_text(leaf.subject)} is valid for {target.servername}, chain of "
            f"{len(verified.chain)} up to {name_to_text(top.subject)} in {options.ca_origin}",
        )
    )
    return True


def _client_ca(probe: TlsOutcome, material: Material | None, steps: list[Step]) -> bool:
    names = probe.client_ca_names
    required = isinstance(probe.error, PartnerRequiresClientCertificate)
    listed = "; ".join(name_to_text(n) for n in names[:6]) + (" ..." if len(names) > 6 else "")
    if not names:
        detail = (
            "the server requires a client certificate and names no CA: any issuer it trusts"
            if required
            else "the server names no CA for client certificates: it accepts any issuer, or "
            "does not ask for a certificate at all"
        )
        steps.append(Step.passed("server.client_ca", detail))
        return True
    detail = f"the server asks for a client certificate issued by: {listed}"
    if material is None:
        steps.append(Step.passed("server.client_ca", detail))
        return True
    ours = chain_names(material)
    if any(name in names for name in ours):
        match = next(name for name in ours if name in names)
        steps.append(
            Step.passed("server.client_ca", f"{detail}; ours chains to {name_to_text(match)}")
        )
        return True
    leaf = material.chain[0]
    issuer = name_to_text(leaf.issuer)
    if len(material.chain) == 1 and not is_self_signed(leaf):
        error: MutlsError = MissingIntermediate(
            f"{detail}; our certificate's issuer {issuer} is not among them and we send the "
            "leaf without its intermediate CA",
            hint="append the intermediate CA certificate(s) to the certificate file, leaf first "
            "(`cat client.pem intermediate.pem > chain.pem`); the server's CA names say which "
            "root it expects",
        )
    else:
        error = PartnerRejectedCertificate(
            f"{detail}; our certificate chains to {name_to_text(material.chain[-1].issuer)}, "
            "which is not among them",
            hint=_REJECTION_HINTS["unknown_ca"],
            reason="unknown_ca",
        )
    steps.append(Step.failed("server.client_ca", error))
    return False


def _handshake_and_request(
    target: Target,
    addresses: list[tuple[str, int]],
    material: Material | None,
    options: DoctorOptions,
    steps: list[Step],
) -> None:
    context = partner_client_context(material, preset=options.preset, verify=False)
    outcome = handshake(
        target,
        addresses,
        context,
        sent_certificate=material is not None,
        timeout=options.timeout,
        wait_verdict=True,
    )
    if outcome.error is not None:
        steps.append(
            Step.failed("handshake", outcome.error, hint=_handshake_hint(outcome.error, material))
        )
        return
    assert outcome.connection is not None
    cipher = outcome.connection.get_cipher_name()
    with_cert = "with our client certificate" if material is not None else "without a certificate"
    steps.append(
        Step.passed("handshake", f"{outcome.version} {cipher} {with_cert}: the server accepted it")
    )
    try:
        answer = request(outcome, target, options.timeout)
    except PartnerError as error:
        steps.append(Step.failed("http", error))
        return
    finally:
        outcome.close()
    mutls = answer.mutls_error()
    summary = f"GET {target.path}: HTTP {answer.status} {answer.reason}".rstrip()
    if mutls is not None:
        steps.append(
            Step(
                name="http",
                ok=False,
                detail=f"{summary}; mutls error {mutls['code']}: {mutls['message']}",
                code=mutls["code"],
                hint=mutls["hint"] or None,
            )
        )
    elif (refusal := _certificate_refused_in_http(answer, summary, material)) is not None:
        steps.append(Step.failed("http", refusal, hint=_handshake_hint(refusal, material)))
    elif answer.status >= 400:
        steps.append(
            Step(
                name="http",
                ok=False,
                detail=summary,
                code="http_status",
                hint="the mTLS connection works; the server refused this request in HTTP "
                "(check the path, and any token or header the API also needs)",
            )
        )
    else:
        steps.append(Step.passed("http", summary))


#: nginx with ``ssl_verify_client on`` completes the handshake whatever the client sends and
#: refuses afterwards, in HTTP: 400 (or 496/495 when an error_page exposes them) with these
#: phrases in its page. The handshake step cannot see it; the HTTP step names the cause.
_NGINX_NO_CERTIFICATE = b"No required SSL certificate was sent"
_NGINX_CERTIFICATE_ERROR = b"The SSL certificate error"


def _certificate_refused_in_http(
    answer: HttpAnswer, summary: str, material: Material | None
) -> PartnerError | None:
    """The client-certificate refusal an nginx-style server sends as an HTTP page, else None."""
    if answer.status not in {400, 495, 496}:
        return None
    if answer.status == 496 or _NGINX_NO_CERTIFICATE in answer.body:
        sent = "" if material is None else " although we sent one (check the chain we send)"
        return PartnerRequiresClientCertificate(
            f'{summary}: "{_NGINX_NO_CERTIFICATE.decode()}", the server (nginx) requires a '
            f"client certificate and got none{sent}",
            reason="certificate_required",
        )
    if answer.status == 495 or _NGINX_CERTIFICATE_ERROR in answer.body:
        return PartnerRejectedCertificate(
            f'{summary}: "{_NGINX_CERTIFICATE_ERROR.decode()}", the server (nginx) could not '
            "verify our client certificate (after the handshake, so no TLS alert says why)",
            hint="the server does not accept our chain: an issuer it does not trust (a "
            "look-alike CA, a sandbox certificate against production?), an expired or revoked "
            "certificate, or a chain longer than its ssl_verify_depth; the partner's nginx "
            "error log names the reason",
            reason="certificate_error",
        )
    return None


def _handshake_hint(error: PartnerError, material: Material | None) -> str | None:
    if isinstance(error, PartnerRequiresClientCertificate) and material is None:
        return _NO_MATERIAL_HINT
    if isinstance(error, PartnerRejectedCertificate) and error.reason in _REJECTION_HINTS:
        return _REJECTION_HINTS[error.reason]
    return error.hint or None
