"""The app's own errors, each carrying the HTTP status it is answered with.

    PlaygroundError
    ├── NotFoundError           404: no such job or image
    ├── InvalidParameters       422: a field failed validation (nothing was sent upstream)
    │   └── Conflict            409: valid, but it clashes with what is there (a name taken)
    ├── IdempotencyKeyReused    422: the key was used before for a different request
    ├── KeyRefused              503: PixelDojo refuses the API key; nothing is sent until it works
    ├── UpstreamBusy            429: no room in the key's rate budget now; nothing was sent
    ├── OverBudget              403: the job would take its author over their credit budget
    ├── SignInRequired          401: sign-in is on and nobody is signed in
    ├── Forbidden               403: signed in, but not allowed to do this
    ├── CrossSiteRequest        403: a state-changing request that did not come from this site
    ├── UploadRefused           422: an uploaded file is not an image the gallery keeps
    ├── UploadTooLarge          413: an uploaded file is over the byte cap
    ├── SubmissionFailed        the upstream refused the job (the job row says why)
    └── MissingExtra            a setting needs an optional part that is not installed
                                (said at start-up, never in answer to a request)

They are turned into answers in one place (app/web/errors.py): JSON for the
API, a page for the browser, a fragment for htmx. A message never names a file
on the server (`plain_reason`).
"""

from __future__ import annotations


class PlaygroundError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(PlaygroundError):
    status_code = 404
    code = "not_found"


class InvalidParameters(PlaygroundError):
    status_code = 422
    code = "invalid_parameters"

    def __init__(self, field_errors: dict[str, str]) -> None:
        self.field_errors = field_errors
        summary = "; ".join(f"{field}: {message}" for field, message in field_errors.items())
        super().__init__(summary)


class Conflict(InvalidParameters):
    """The request is well-formed but clashes with the current state: a name already taken,
    the team's last admin. Still names the field, so a form can show it."""

    status_code = 409
    code = "conflict"


class IdempotencyKeyReused(PlaygroundError):
    status_code = 422
    code = "idempotency_key_reused"

    def __init__(self, job_id: int) -> None:
        super().__init__(
            f"This Idempotency-Key was already used for job {job_id} with different "
            "parameters; use a new key for a new request."
        )
        self.job_id = job_id


class KeyRefused(PlaygroundError):
    status_code = 503
    code = "api_key_refused"

    def __init__(self, upstream_message: str) -> None:
        super().__init__(
            f"PixelDojo refuses the API key ({upstream_message}), so no job is sent until it "
            "works. Fix PIXELDOJO_API_KEY and restart, or check again from the banner."
        )


class UpstreamBusy(PlaygroundError):
    """A call a person asked for (not a submission, whose job records its own failure) found
    no room in the key's rate budget soon enough: nothing was sent."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OverBudget(PlaygroundError):
    status_code = 403
    code = "budget_exceeded"


class SignInRequired(PlaygroundError):
    status_code = 401
    code = "sign_in_required"


class WrongPassword(PlaygroundError):
    status_code = 401
    code = "wrong_password"


class TooManyAttempts(PlaygroundError):
    """Sign-ins slowed down after failures: try again after `retry_after` seconds."""

    status_code = 429
    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(PlaygroundError):
    status_code = 403
    code = "forbidden"


class CrossSiteRequest(PlaygroundError):
    status_code = 403
    code = "cross_site_request"

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"This request was refused because {reason}. Reload the page and try again."
        )


class UploadRefused(PlaygroundError):
    status_code = 422
    code = "upload_refused"


class UploadTooLarge(PlaygroundError):
    status_code = 413
    code = "upload_too_large"


class SubmissionFailed(PlaygroundError):
    """The job row exists (so nothing is lost), but the upstream did not take the job."""

    def __init__(
        self,
        message: str,
        *,
        job_id: int,
        status_code: int,
        code: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.status_code = status_code
        self.code = code
        self.retry_after = retry_after


def plain_reason(exc: BaseException) -> str:
    """What went wrong, in the exception's own words but never naming a file on this server,
    for a message others read (an answer, a job's error, doctor's report): an OSError's text
    ends in the path it was about ("[Errno 28] No space left on device: '/srv/…/tmp/x'"), so
    its reason alone is given."""
    if isinstance(exc, OSError) and (exc.filename is not None or exc.filename2 is not None):
        return exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__


class MissingExtra(PlaygroundError):
    """A setting asks for PostgreSQL or S3, and that extra is not installed
    (app/core/extras.py)."""

    code = "missing_extra"
