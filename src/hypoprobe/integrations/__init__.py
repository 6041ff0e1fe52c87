"""Integrations: endpoint scopes opened by the web frameworks and job runners users run.

Each submodule imports its framework only when it is itself imported, so ``hypoprobe``
never needs Flask, Django, Starlette or Celery installed; install the matching extra
(``pip install 'hypoprobe[flask]'`` ...) for the integration you use.

=======================  ===============================================================
module                   what it opens a scope for
=======================  ===============================================================
``.wsgi``                any WSGI app: ``HypoprobeMiddleware(app, name=...)``
``.asgi``                any ASGI app (HTTP only): ``HypoprobeASGIMiddleware(app, name=...)``
``.flask``               a Flask app, named by its URL rule: ``instrument_app(app)``
``.django``              Django, named by the URL resolver: ``HypoprobeMiddleware``
``.starlette``           Starlette / FastAPI, named by the matched route: ``instrument_app(app)``
``.jobs``                background jobs: ``@job("name")``; Celery: ``instrument_celery()``
=======================  ===============================================================

Web endpoints are named ``"METHOD route-template"`` (``"GET /campaigns/{id}"``), never by
raw path; a request no route matched is ``"GET <unmatched>"``. Jobs are ``"job <name>"``.

Example::

    from hypoprobe.integrations.flask import instrument_app

    instrument_app(app)  # every request: an endpoint scope named by its URL rule
"""
