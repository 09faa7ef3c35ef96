"""The Celery app.

Run ``celery -A worker worker``, ``celery -A worker beat`` or ``celery -A worker flower``.
"""

from beat_schedule import SCHEDULE
from dispatcher.worker import create_app

app = create_app()
app.conf.beat_schedule = SCHEDULE
