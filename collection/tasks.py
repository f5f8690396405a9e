"""Celery tasks of the collection core: exports, and the periodic upkeep (idle sessions
abandoned, the retention purge, old export files removed). Plain functions over the
schema; their names are the constants in gazelab.celery_app."""
from __future__ import annotations

from celery import shared_task

from gazelab.celery_app import (ABANDON_SESSIONS_TASK, EXPORT_TASK, LONG_JOB_OPTIONS,
                                REMOVE_OLD_EXPORTS_TASK, RETENTION_TASK)
from gazelab.db import session_scope


@shared_task(name=EXPORT_TASK, bind=True, **LONG_JOB_OPTIONS)
def write_export(self, job_id: int) -> str | None:
    from collection.export import write_export as write
    config = self.app.gazelab_config
    with session_scope(config.database_url) as db:
        job = write(db, config, job_id)
        return job.status if job is not None else None


@shared_task(name=ABANDON_SESSIONS_TASK, bind=True)
def abandon_idle_sessions(self) -> int:
    from collection.erasure import abandon_idle_sessions as abandon
    config = self.app.gazelab_config
    with session_scope(config.database_url) as db:
        return abandon(db, config)


@shared_task(name=RETENTION_TASK, bind=True)
def purge_expired_volunteers(self) -> int:
    from collection.erasure import purge_expired
    config = self.app.gazelab_config
    with session_scope(config.database_url) as db:
        return purge_expired(db, config)


@shared_task(name=REMOVE_OLD_EXPORTS_TASK, bind=True)
def remove_old_exports(self) -> int:
    from collection.export import remove_old_exports as remove
    config = self.app.gazelab_config
    with session_scope(config.database_url) as db:
        return remove(db, config)
