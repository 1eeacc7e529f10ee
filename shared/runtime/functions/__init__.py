"""The Lambda functions' handlers, one module per function.

Each project's `functions/<name>/app.py` re-exports one of them (template.yaml's CodeUri points
there), so that this repository and a project made by `jobs init` run the same code. A module
reads its settings when imported, as a Lambda cold start does.
"""
