"""The jobs dashboard: server-rendered pages served by the API function under /dashboard.

Pages are rendered with Jinja2 (autoescaped) from templates in this package;
the stylesheet and the small script are files of this package too, served by
the same function, so nothing is fetched from elsewhere at run time and there
is no build step.
"""
