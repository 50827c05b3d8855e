"""``mutls doctor``: walk an mTLS connection step by step and name the first thing that is wrong.

``report`` holds the checklist values, ``material`` the offline checks of our own certificate and
key, ``probe`` the network walk (name, TCP, TLS versions, the server's chain, the CA names it
accepts, the handshake with our certificate, the HTTP answer), ``walk`` puts them in order.
"""

from __future__ import annotations

from mutls.doctor.material import ClientSource
from mutls.doctor.report import Cause, Report, Step
from mutls.doctor.walk import DoctorOptions, diagnose

__all__ = ["Cause", "ClientSource", "DoctorOptions", "Report", "Step", "diagnose"]
