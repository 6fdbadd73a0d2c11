"""``python -m minikit report …``: the course's whole pipeline without Jupyter (see ``minikit.report``)."""

import sys

from minikit.report import main

if __name__ == "__main__":
    sys.exit(main())
