"""``python -m minikit report …`` (the course's whole pipeline without Jupyter, ``minikit.report``) and
``python -m minikit build …`` (every trained artifact the chapters load, ``minikit.build``), and
``python -m minikit student …`` (the notebooks without their solutions, ``minikit.editions``)."""

import sys

from minikit.report import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["student"]:
        from minikit import editions  # only this command needs it (it imports the implement-it checks)

        sys.exit(editions.main(sys.argv[2:]))
    sys.exit(main())
