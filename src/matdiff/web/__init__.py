"""``matdiff serve``: a local web app over the derivative engine.

    schema.py    what a request may contain (validated before any work is done)
    service.py   the work itself, in a worker process: derive, variables, source
    workers.py   the worker processes: a time limit per request, killed and replaced when hung
    app.py       the Starlette application: routes, limits, security headers, the static page
    serve.py     the command: binds, prints the URL, runs uvicorn
    assets.py    KaTeX from its npm package, at build time
    static/      the page (plain HTML, CSS and JavaScript)

Only app.py and serve.py need the ``[web]`` extra (Starlette, uvicorn).
"""
