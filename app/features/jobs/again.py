"""Submitting an earlier job's parameters again: "same prompt, new seed", and a retry.

Both go through `submit_job` (app/features/jobs/submission.py), at most once per token,
and the new job says which one it came from.
"""

from __future__ import annotations

import anyio

from app.core.errors import NotFoundError
from app.domain.model_params import run_from_body
from app.domain.rules import has_builtin_record
from app.domain.runs import with_known_seed
from app.features.gallery import lookups
from app.features.jobs import creation
from app.features.jobs.submission import Submitter, rules_for_run, submit_job
from app.storage.db.tables import Job, User


async def submit_new_seed(
    submitter: Submitter,
    job_id: int,
    *,
    token: str | None = None,
    user: User | None = None,
    ip: str | None = None,
) -> tuple[Job, bool]:
    """Submit a job's parameters again with a new seed ("same prompt, new seed"); at most
    once per token. The new job says it came from the old one."""
    return await submit_again(submitter, job_id, new_seed=True, token=token, user=user, ip=ip)


async def submit_again(
    submitter: Submitter,
    job_id: int,
    *,
    new_seed: bool,
    token: str | None = None,
    user: User | None = None,
    ip: str | None = None,
) -> tuple[Job, bool]:
    """Submit a job's parameters again, with a new seed or (a retry) the same one; at most
    once per token. The new job says it came from the old one."""
    job = await anyio.to_thread.run_sync(
        lambda: lookups.get_job_detail(submitter.db, job_id=job_id)
    )
    if job is None:
        raise NotFoundError(f"There is no job {job_id}.")
    kind = "new-seed" if new_seed else "retry"
    key = f"{kind}:{job_id}:{token}" if token else None
    # The body it sent (with a seed drawn afresh for a new seed: the key's own, so a repeat
    # asks the same); its references go again (the body keeps only notes naming them).
    in_force = await rules_for_run(submitter, job.model)
    body = {
        name: value for name, value in job.request_body.items() if name != "seed" or not new_seed
    }
    if in_force.image_input is not None and job.reference_images:
        body.pop(in_force.image_input.name, None)
    params = run_from_body(body, builtin_record=has_builtin_record(job.model))
    if new_seed:
        params = with_known_seed(params, in_force.rules, key=key, avoid=job.seed)
    return await submit_job(
        submitter,
        params=params,
        model=job.model,
        preset=job.preset,
        idempotency_key=key,
        user=user,
        ip=ip,
        remix_of=creation.RemixSource(job_id=job_id),
        reference_images=job.reference_images or (),
    )
