"""The PixelDojo async job API: a client, its answers and its errors."""

from app.upstream.answers import ListedJob, UpstreamJob, UpstreamState, parse_job, parse_job_list
from app.upstream.client import Download, PixelDojoClient
from app.upstream.errors import (
    AuthenticationFailed,
    DownloadRefused,
    InsufficientCredits,
    InvalidRequest,
    LocalRateLimit,
    MalformedResponse,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamUnreachable,
    error_from_response,
    retry_delay,
)
from app.upstream.hosts import IMAGE_HOSTS_SETTING, ImageHosts, registrable_domain
from app.upstream.ratelimit import RateLimiter

__all__ = [
    "IMAGE_HOSTS_SETTING",
    "AuthenticationFailed",
    "Download",
    "DownloadRefused",
    "ImageHosts",
    "InsufficientCredits",
    "InvalidRequest",
    "ListedJob",
    "LocalRateLimit",
    "MalformedResponse",
    "NotFound",
    "PermissionDenied",
    "PixelDojoClient",
    "RateLimited",
    "RateLimiter",
    "ServerError",
    "UpstreamError",
    "UpstreamHTTPError",
    "UpstreamJob",
    "UpstreamState",
    "UpstreamUnreachable",
    "error_from_response",
    "parse_job",
    "parse_job_list",
    "registrable_domain",
    "retry_delay",
]
