"""``hypoprobe run``: probe an application you do not own, with no code change.

``hypoprobe run --config perf.toml -- gunicorn -w 2 app:app`` starts the command with a
``sitecustomize`` bootstrap on ``PYTHONPATH``, so every Python process it starts (the
gunicorn master and its workers, uvicorn, ``manage.py runserver``, ``python app.py``)
loads the TOML file before the application imports anything, instruments the web
frameworks it finds, and records into one multi-process directory. The launcher stays
the parent: it serves one ``/metrics`` for all of them, forwards signals, prints a
one-line summary, and exits with the command's exit code.

=====================  ================================================================
module                 what it owns
=====================  ================================================================
``_options``           the options, from the command line or the environment
``_launcher``          the parent: run directory, child environment, signals, exit code
``_serve``             the ``/metrics`` endpoint (one function, so it can be swapped)
``_status``            the per-process reports the bootstrap writes for the launcher
``_states``            target states for the summary (one adapter over ``_load``)
``_bootstrap``         what runs first in every Python process of the command
``_frameworks``        post-import hooks instrumenting Flask, Django, Starlette, servers
``_boot/``             the ``sitecustomize.py`` put on ``PYTHONPATH``
=====================  ================================================================

Example::

    $ hypoprobe run --config perf.toml --metrics-port 9464 -- gunicorn -w 2 app:app
    hypoprobe run: 2 hypotheses, 3 targets attached, 0 pending, 0 failed; /metrics on http://127.0.0.1:9464/metrics
"""
