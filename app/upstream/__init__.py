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
from app.upstream.ratelimit import RateLimiter

__all__ = [
    "AuthenticationFailed",
    "Download",
    "DownloadRefused",
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
    "retry_delay",
]
