"""Entry point of the desktop bundle: the same ``efsam-studio`` command as a pip install."""

import sys

from efficientsam_studio.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
