"""``python -m minikit report …`` (the course's whole pipeline without Jupyter, ``minikit.report``) and
``python -m minikit build …`` (every trained artifact the chapters load, ``minikit.build``)."""

import sys

from minikit.report import main

if __name__ == "__main__":
    sys.exit(main())
