"""Predict new summaries: ``python -m stages.predict --input IN --output OUT [--models models/final]``.

The same as the ``callreason predict`` command (see ``callreason/cli.py``); not a DVC stage.
"""

from callreason.cli import predict

if __name__ == "__main__":
    predict(prog="python -m stages.predict")
