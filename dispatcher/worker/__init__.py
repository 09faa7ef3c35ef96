"""What a worker process builds: the Celery app and its tasks, thin wrappers over the engine.

``worker.py`` at the top of the repository is ``create_app()`` plus the beat schedule;
``celery -A worker worker|beat|flower`` runs it.
"""
