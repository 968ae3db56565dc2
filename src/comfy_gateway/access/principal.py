"""Who is calling: the key's name (the tenant), its role and its limits."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..errors import JobNotFound
from ..jobs.model import ANONYMOUS_TENANT, Job


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    max_concurrent_jobs: int | None = None
    max_queued_jobs: int | None = None
    requests_per_minute: int | None = None
    priority: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def may_see(self, job: Job) -> bool:
        return self.is_admin or job.tenant == self.name

    def check_sees(self, job: Job) -> Job:
        """The job, if this caller may see it; else the same 404 as for a job that does not exist."""
        if not self.may_see(job):
            raise JobNotFound("Job not found", job_id=job.id)
        return job


# A gateway without keys has one tenant, allowed everything (as before keys existed).
ANONYMOUS = Principal(ANONYMOUS_TENANT, Role.ADMIN)
