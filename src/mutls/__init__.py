"""mutls: a self-hosted mutual-TLS platform. This module re-exports the public Python API."""

from __future__ import annotations

from mutls.errors import MutlsError
from mutls.pki.authority import Profile, build_ca_certificate, build_crl, sign_csr
from mutls.pki.csr import SubjectSpec, build_csr
from mutls.pki.export import ExportFormat, P12Profile, export_material
from mutls.pki.inspect import ExpiryStatus, describe_certificate, inspect_material
from mutls.pki.keys import KeySpec, generate_key, match_key
from mutls.pki.loader import load_certificates, load_crl, load_identity, load_material
from mutls.pki.material import Finding, Material
from mutls.pki.verify import Purpose, verify_chain

__version__ = "0.1.0"

__all__ = [
    "ExpiryStatus",
    "ExportFormat",
    "Finding",
    "KeySpec",
    "Material",
    "MutlsError",
    "P12Profile",
    "Profile",
    "Purpose",
    "SubjectSpec",
    "__version__",
    "build_ca_certificate",
    "build_crl",
    "build_csr",
    "describe_certificate",
    "export_material",
    "generate_key",
    "inspect_material",
    "load_certificates",
    "load_crl",
    "load_identity",
    "load_material",
    "match_key",
    "sign_csr",
    "verify_chain",
]
